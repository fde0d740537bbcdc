using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChatScale.Reliability.Tests.Infrastructure;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>
/// Redis is SIGKILLed and restarted while two sample-app nodes carry a steady stream of chat messages both ways.
/// </summary>
/// <remarks>
/// With Redis configured, the sample's jobs go to the durable Redis Streams dispatcher (RedisStreamDispatcher). With
/// <c>--appendonly yes --appendfsync always</c> a job accepted (XADD acknowledged) survives the SIGKILL, and the test
/// asserts every accepted job is delivered; without persistence it only measures what is lost. Figures: one message every 40 ms from each side; ~1 s of stream before the kill, 2 s of outage, then the
/// stream runs until both nodes have recovered plus 20 messages. Heartbeat 1 s, presence timeout 4 s; jobs retry up
/// to 100 times with 100-500 ms backoff.
/// </remarks>
public sealed class RedisOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan SendEvery = TimeSpan.FromMilliseconds(40);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Redis_killed_and_restarted_mid_stream_hosts_recover_and_clients_catch_up_from_history(bool appendOnly)
    {
        // Without persistence the restarted Redis is empty: jobs not yet taken from the stream die with it, and
        // presence is gone until each node's next heartbeat restores it. That run measures the loss; it asserts none.
        await using var redis = appendOnly
            ? await RedisServer.StartNewAsync("--appendonly", "yes", "--appendfsync", "always")
            : await RedisServer.StartNewAsync();
        Assert.IsType<RedisServer.ProcessRedisServer>(redis); // StopAsync is Process.Kill: SIGKILL, no shutdown.
        var prefix = RedisFixture.UniquePrefix("outage");
        using var jobs = new SucceededJobs();
        var store = new InMemoryChatStore();
        string[] tuning =
        [
            "--ChatScale:HeartbeatInterval=00:00:01",
            "--ChatScale:PresenceTimeout=00:00:04",
            // This test measures raw pub/sub loss across the outage on sockets that stay open.
            "--ChatScale:Redis:CloseConnectionsAfterResubscribe=false",
            "--ChatScale:Dispatcher:MaxAttempts=100",
            "--ChatScale:Dispatcher:InitialBackoff=00:00:00.1",
            "--ChatScale:Dispatcher:MaxBackoff=00:00:00.5",

            // The send loops post as fast as they can: this test is about the outage, not the per-user rate limit.
            "--Limits:MessagesPerSecond=100000",
            "--Limits:MessageBurst=100000",
        ];
        await using var node1 = await SampleNode.StartAsync("outage-n1", redis.ConnectionString, prefix, store, tuning);
        await using var node2 = await SampleNode.StartAsync("outage-n2", redis.ConnectionString, prefix, store, tuning);

        var (aliceHttp, aliceToken) = await node1.SignInAsync("alice");
        var (bobHttp, bobToken) = await node2.SignInAsync("bob");
        using var _a = aliceHttp;
        using var _b = bobHttp;
        var created = await aliceHttp.PostAsJsonAsync("/api/conversations", new { title = "outage", participants = new[] { "bob" } });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var conversationId = (await created.Content.ReadFromJsonAsync<Conversation>(ChatEvents.Json))!.Id;

        var alice = new Inbox(await node1.ConnectAsync(aliceToken));
        var bob = new Inbox(await node2.ConnectAsync(bobToken));
        await Eventually.TrueAsync(async () => (await node1.Registry.LocateAsync(["bob"])).OfflineUsers.Count == 0
            && (await node2.Registry.LocateAsync(["alice"])).OfflineUsers.Count == 0, "both users online in presence");

        // The steady stream: alice -> bob through node 1's API, bob -> alice through node 2's.
        var toBob = new ConcurrentQueue<string>();
        var toAlice = new ConcurrentQueue<string>();
        var apiFailures = 0;
        var refused = new ConcurrentQueue<(string From, int Status)>();
        using var stopStream = new CancellationTokenSource();
        var stream = Task.WhenAll(
            SendLoopAsync(aliceHttp, conversationId, "a", toBob, refused, () => Interlocked.Increment(ref apiFailures), stopStream.Token),
            SendLoopAsync(bobHttp, conversationId, "b", toAlice, refused, () => Interlocked.Increment(ref apiFailures), stopStream.Token));

        // Alongside, raw pub/sub: numbered frames published straight through each node's broadcaster every 20 ms, to
        // measure what at-most-once pub/sub loses around the outage.
        var pulseToBob = new PulseLog();
        var pulseToAlice = new PulseLog();
        var pulses = Task.WhenAll(
            PulseLoopAsync(node1.Broadcaster, "bob", pulseToBob, stopStream.Token),
            PulseLoopAsync(node2.Broadcaster, "alice", pulseToAlice, stopStream.Token));

        await Eventually.TrueAsync(() => bob.Messages.Count >= 20 && alice.Messages.Count >= 20, "the stream flowing before the outage");

        // SIGKILL.
        var killedAt = Stopwatch.StartNew();
        await redis.StopAsync();
        var sentAtKill = toBob.Count + toAlice.Count;

        // Publishing while Redis is down fails at once with BackplaneUnavailableException instead of queueing.
        var failedPublishes = 0;
        var slowestFailure = TimeSpan.Zero;
        var outageProbe = Encoding.UTF8.GetBytes("{\"type\":\"probe\"}");
        while (killedAt.Elapsed < Outage)
        {
            var clock = Stopwatch.StartNew();
            var publish = node1.Broadcaster.PublishAsync(["bob"], outageProbe).AsTask();
            var error = await Record.ExceptionAsync(() => publish.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.IsType<BackplaneUnavailableException>(error);
            failedPublishes++;
            slowestFailure = clock.Elapsed > slowestFailure ? clock.Elapsed : slowestFailure;
            await Task.Delay(100);
        }

        await redis.StartAsync();
        var restartedAt = killedAt.Elapsed;
        var sentAtRestart = toBob.Count + toAlice.Count;

        // Presence comes back by heartbeat (the restarted Redis is empty), and listeners resubscribe: a direct
        // publish from node 1 reaches bob on node 2 again.
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                return (await node1.Registry.LocateAsync(["bob"])).UsersByNode.ContainsKey("outage-n2")
                    && (await node2.Registry.LocateAsync(["alice"])).UsersByNode.ContainsKey("outage-n1");
            }
            catch (BackplaneUnavailableException)
            {
                return false;
            }
        }, "presence restored by heartbeat", TimeSpan.FromSeconds(60));
        var presenceBackAt = killedAt.Elapsed;

        var probesBefore = bob.Probes;
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await node1.Broadcaster.PublishAsync(["bob"], outageProbe);
            }
            catch (BackplaneUnavailableException)
            {
                return false;
            }

            return bob.Probes > probesBefore;
        }, "node 2 resubscribed (a publish from node 1 reaches bob)", TimeSpan.FromSeconds(60));
        var resubscribedAt = killedAt.Elapsed;

        // Both directions accepted by the API again (enqueue works on both nodes after the restart).
        var (toBobAtRecovery, toAliceAtRecovery) = (toBob.Count, toAlice.Count);
        await Eventually.TrueAsync(() => toBob.Count >= toBobAtRecovery + 20 && toAlice.Count >= toAliceAtRecovery + 20, "both directions accepted again after recovery", TimeSpan.FromSeconds(60));
        await stopStream.CancelAsync();
        await stream;
        await pulses;

        // Every accepted job ran to completion (none dead-lettered), and the dispatchers drained.
        await Eventually.TrueAsync(async () =>
        {
            var s1 = await node1.Dispatcher.GetStatisticsAsync();
            var s2 = await node2.Dispatcher.GetStatisticsAsync();
            return s1.Pending + s1.InFlight + s2.Pending + s2.InFlight == 0;
        }, "both dispatchers drained", TimeSpan.FromSeconds(60));
        Assert.Equal(0, (await node1.Dispatcher.GetStatisticsAsync()).DeadLettered);
        Assert.Equal(0, (await node2.Dispatcher.GetStatisticsAsync()).DeadLettered);

        // A final marker per direction: jobs of one conversation run in order, so once it arrives, everything before
        // it was either delivered or lost for good.
        var markerA = (await SendAsync(aliceHttp, conversationId, "marker-a"))!;
        var markerB = (await SendAsync(bobHttp, conversationId, "marker-b"))!;
        toBob.Enqueue(markerA);
        toAlice.Enqueue(markerB);
        await Eventually.TrueAsync(() => bob.Messages.ContainsKey(markerA) && alice.Messages.ContainsKey(markerB), "the final markers delivered");

        // A job is delivered when its handler published the message live or, for a recipient it found offline,
        // handed it to the push notifier. Any node may run any job, so both nodes' notifiers count.
        var pushed = node1.Notifications.Recorded.Concat(node2.Notifications.Recorded).Select(n => (n.UserId, n.MessageId)).ToHashSet();
        // A last pulse per direction: one node's publishes stay in order, so once it arrives the others are in or lost.
        await node1.Broadcaster.PublishAsync(["bob"], PulseFrame(-1));
        await node2.Broadcaster.PublishAsync(["alice"], PulseFrame(-1));
        await Eventually.TrueAsync(() => bob.Pulses.ContainsKey(-1) && alice.Pulses.ContainsKey(-1), "the last pulses delivered");
        var pulsesLost = pulseToBob.Published.Count(n => !bob.Pulses.ContainsKey(n)) + pulseToAlice.Published.Count(n => !alice.Pulses.ContainsKey(n));
        output.WriteLine($"raw pub/sub every 20 ms: {pulseToBob.Published.Count + pulseToAlice.Published.Count} published to the recipient's node, {pulseToBob.Failed + pulseToAlice.Failed} failed fast with BackplaneUnavailableException, {pulseToBob.SeenOffline.Count + pulseToAlice.SeenOffline.Count} not sent because presence said offline; {pulsesLost} published but never received (at-most-once)");

        var lostToBob = toBob.Where(id => !bob.Messages.ContainsKey(id)).ToList();
        var lostToAlice = toAlice.Where(id => !alice.Messages.ContainsKey(id)).ToList();
        var pushedToBob = lostToBob.Count(id => pushed.Contains(("bob", id)));
        var pushedToAlice = lostToAlice.Count(id => pushed.Contains(("alice", id)));
        var undeliveredJobs = lostToBob.Where(id => !pushed.Contains(("bob", id))).Concat(lostToAlice.Where(id => !pushed.Contains(("alice", id)))).ToList();
        output.WriteLine($"Redis persistence: {(appendOnly ? "AOF, fsync always" : "none")}");
        output.WriteLine($"accepted (202): {toBob.Count} to bob, {toAlice.Count} to alice; refused while Redis was down: {refused.Count(r => r.From == "a")} from alice, {refused.Count(r => r.From == "b")} from bob ({string.Join(", ", refused.Select(r => r.Status).Distinct())}); transport failures: {apiFailures}");
        output.WriteLine($"sent before kill: {sentAtKill}, before restart: {sentAtRestart}; outage {restartedAt.TotalSeconds:F2} s");
        output.WriteLine($"publishes during outage: {failedPublishes} failed fast, slowest failure {slowestFailure.TotalMilliseconds:F0} ms");
        output.WriteLine($"presence back at {presenceBackAt.TotalSeconds:F2} s, resubscribed at {resubscribedAt.TotalSeconds:F2} s after the kill");
        output.WriteLine($"not received live: {lostToBob.Count} to bob, {lostToAlice.Count} to alice; of these pushed as offline (presence empty after the restart): {pushedToBob} bob, {pushedToAlice} alice; accepted jobs neither published live nor pushed: {undeliveredJobs.Count}");

        Assert.Equal(0, apiFailures);
        Assert.All(refused, r => Assert.Equal(503, r.Status)); // Service Unavailable + Retry-After: the client retries.
        Assert.True(failedPublishes > 0);

        // Durable dispatcher: every accepted job (plus the two markers) ran to success, none lost with the killed
        // Redis. Per message, delivery to the socket is then at-most-once pub/sub (reported above, not asserted).
        output.WriteLine($"jobs succeeded: {jobs.Count} for {toBob.Count + toAlice.Count} accepted (markers included)");
        if (appendOnly)
        {
            Assert.True(jobs.Count >= toBob.Count + toAlice.Count, $"{jobs.Count} jobs succeeded for {toBob.Count + toAlice.Count} accepted");
        }

        // Catch-up: the history endpoint (store of record) has every accepted message, so received + history is all.
        Assert.Empty(toBob.Except(await HistoryAsync(bobHttp, conversationId)));
        Assert.Empty(toAlice.Except(await HistoryAsync(aliceHttp, conversationId)));

        // The hosts stayed up and report healthy again.
        Assert.Equal(HttpStatusCode.OK, (await aliceHttp.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await bobHttp.GetAsync("/health")).StatusCode);
        await alice.DisposeAsync();
        await bob.DisposeAsync();
    }

    private static byte[] PulseFrame(long n) => Encoding.UTF8.GetBytes($"{{\"type\":\"pulse\",\"n\":{n.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}");

    private static async Task PulseLoopAsync(IMessageBroadcaster broadcaster, string user, PulseLog log, CancellationToken stop)
    {
        for (long n = 0; !stop.IsCancellationRequested; n++)
        {
            try
            {
                var result = await broadcaster.PublishAsync([user], PulseFrame(n), CancellationToken.None);
                (result.OfflineUsers.Count == 0 ? log.Published : log.SeenOffline).Add(n);
            }
            catch (BackplaneUnavailableException)
            {
                Interlocked.Increment(ref log.Failed);
            }

            try
            {
                await Task.Delay(20, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task SendLoopAsync(HttpClient http, string conversationId, string tag, ConcurrentQueue<string> accepted, ConcurrentQueue<(string From, int Status)> refused, Action failed, CancellationToken stop)
    {
        var n = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var response = await http.PostAsJsonAsync($"/api/conversations/{conversationId}/messages", new { text = $"{tag}-{n++}" });
                if (response.StatusCode == HttpStatusCode.Accepted)
                {
                    accepted.Enqueue((await response.Content.ReadFromJsonAsync<ChatMessage>(ChatEvents.Json))!.Id);
                }
                else
                {
                    // Not accepted (the enqueue failed fast while Redis was down): the client knows to retry.
                    refused.Enqueue((tag, (int)response.StatusCode));
                }
            }
            catch (HttpRequestException)
            {
                failed();
            }

            try
            {
                await Task.Delay(SendEvery, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task<string?> SendAsync(HttpClient http, string conversationId, string text)
    {
        var response = await http.PostAsJsonAsync($"/api/conversations/{conversationId}/messages", new { text });
        if (response.StatusCode != HttpStatusCode.Accepted)
        {
            throw new HttpRequestException($"Send answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        return (await response.Content.ReadFromJsonAsync<ChatMessage>(ChatEvents.Json))!.Id;
    }

    private static async Task<HashSet<string>> HistoryAsync(HttpClient http, string conversationId)
    {
        // Page forward by seq from the very beginning: without 'after' the endpoint returns the newest page instead.
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var after = 0L;
        while (true)
        {
            var page = (await http.GetFromJsonAsync<MessagePageDto>($"/api/conversations/{conversationId}/messages?limit=200&after={after}", ChatEvents.Json))!;
            if (page.Messages.Count == 0)
            {
                return ids;
            }

            foreach (var message in page.Messages)
            {
                ids.Add(message.Id);
            }

            after = page.Messages.Max(m => m.Seq);
        }
    }

    /// <summary>Counts <c>chatscale.dispatch.jobs</c> measurements tagged <c>succeeded</c>, from every node in the process.</summary>
    private sealed class SucceededJobs : IDisposable
    {
        private readonly System.Diagnostics.Metrics.MeterListener _listener = new();
        private long _count;

        public SucceededJobs()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "ChatScale" && instrument.Name == "chatscale.dispatch.jobs")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Value is "succeeded")
                    {
                        Interlocked.Add(ref _count, value);
                    }
                }
            });
            _listener.Start();
        }

        public long Count => Interlocked.Read(ref _count);

        public void Dispose() => _listener.Dispose();
    }

    private sealed class PulseLog
    {
#pragma warning disable CA1051 // A counter the loop increments with Interlocked.
        public int Failed;
#pragma warning restore CA1051

        public ConcurrentBag<long> Published { get; } = [];

        public ConcurrentBag<long> SeenOffline { get; } = [];
    }

    private sealed record MessagePageDto(IReadOnlyList<ChatMessage> Messages);

    /// <summary>Reads one socket in the background and records the message ids and probes it receives.</summary>
    private sealed class Inbox : IAsyncDisposable
    {
        private readonly ClientWebSocket _socket;
        private readonly Task _loop;
        private int _probes;

        public Inbox(ClientWebSocket socket)
        {
            _socket = socket;
            _loop = Task.Run(ReadAsync);
        }

        public ConcurrentDictionary<string, bool> Messages { get; } = new(StringComparer.Ordinal);

        public int Probes => Volatile.Read(ref _probes);

        public ConcurrentDictionary<long, bool> Pulses { get; } = new();

        public async ValueTask DisposeAsync()
        {
            await _socket.CloseQuietlyAsync();
            await _loop;
        }

        private async Task ReadAsync()
        {
            var buffer = new byte[64 * 1024];
            using var frame = new MemoryStream();
            try
            {
                while (true)
                {
                    var result = await _socket.ReceiveAsync(buffer, CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    frame.Write(buffer, 0, result.Count);
                    if (!result.EndOfMessage)
                    {
                        continue;
                    }

                    using var json = JsonDocument.Parse(frame.ToArray());
                    frame.SetLength(0);
                    var type = json.RootElement.GetProperty("type").GetString();
                    if (type == "pulse")
                    {
                        Pulses[json.RootElement.GetProperty("n").GetInt64()] = true;
                    }
                    else if (type == "probe")
                    {
                        Interlocked.Increment(ref _probes);
                    }
                    else if (type == "message")
                    {
                        Messages[json.RootElement.GetProperty("message").GetProperty("id").GetString()!] = true;
                    }
                }
            }
            catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or OperationCanceledException)
            {
                // Closed by the test.
            }
        }
    }
}
