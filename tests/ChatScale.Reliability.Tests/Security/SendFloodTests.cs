using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using ChatScale.Reliability.Tests.Infrastructure;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>
/// One user posting at 1,000 messages/s is held to the per-user send rate (429 + Retry-After) while live delivery in
/// another conversation, from one node to the other, stays fast: p99 under 100 ms when the machine can do that
/// without the flood. Two sample nodes on one redis-server, in this process.
/// </summary>
[Collection(SharedRedis.Name)]
public sealed class SendFloodTests(RedisFixture redis, ITestOutputHelper output)
{
    private const int FloodPerSecond = 1000;
    private const int SenderRate = 4;
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Quiet = TimeSpan.FromSeconds(6);
    private static readonly TimeSpan Measured = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_user_posting_1000_messages_per_second_gets_429s_while_another_conversations_delivery_p99_stays_under_100_ms_when_the_machine_allows()
    {
        var prefix = RedisFixture.UniquePrefix("flood");
        var store = new InMemoryChatStore();
        await using var node1 = await SampleNode.StartAsync("flood-n1", redis.ConnectionString, prefix, store, "--Logging:LogLevel:Default=Warning");
        await using var node2 = await SampleNode.StartAsync("flood-n2", redis.ConnectionString, prefix, store, "--Logging:LogLevel:Default=Warning");

        // The attacker posts into a conversation of their own on node 1.
        var (mallory, _) = await node1.SignInAsync("mallory");
        var spam = await CreateAsync(mallory, "mallory-accomplice");

        // The victims: six senders on node 1 post (each well under the limit) to bob, live on node 2.
        var senders = new List<HttpClient>();
        string[] names = ["alice", "carol", "dave", "erin", "frank", "grace"];
        foreach (var name in names)
        {
            senders.Add((await node1.SignInAsync(name)).Http);
        }

        var (bobHttp, bobToken) = await node2.SignInAsync("bob");
        var conversation = await CreateAsync(senders[0], ["bob", .. names[1..]]);
        using var bob = await node2.ConnectAsync(bobToken);
        var sentAt = new ConcurrentDictionary<string, long>();
        var postTimes = new ConcurrentDictionary<string, double>(StringComparer.Ordinal);
        var latencies = new ConcurrentBag<(char Phase, double Ms)>();
        using var stop = new CancellationTokenSource();
        var repeats = new StrongBox<int>();
        var receiver = ReceiveAsync(bob, sentAt, latencies, repeats, stop.Token);
        try
        {
            // Warm-up, flood included, not measured: JIT of every path (the 429s too), connection pools, the
            // dispatcher's partitions, the listener, the thread pool's size.
            var warmFlood = FloodAsync(mallory, spam, WarmUp);
            await Task.WhenAll(senders.Select((s, i) => SendLoopAsync(s, conversation, $"w{i}", sentAt, postTimes, WarmUp, stop.Token)));
            await warmFlood;

            // The baseline: the same sends without the flood (the attacker's bucket refills meanwhile).
            await Task.WhenAll(senders.Select((s, i) => SendLoopAsync(s, conversation, $"q{i}", sentAt, postTimes, Quiet, stop.Token)));

            // Measured phase: the flood and the victims' sends at once.
            var flood = FloodAsync(mallory, spam, Measured + TimeSpan.FromSeconds(1));
            await Task.WhenAll(senders.Select((s, i) => SendLoopAsync(s, conversation, $"m{i}", sentAt, postTimes, Measured, stop.Token)));
            var (accepted, limited, other, retryAfterMissing, elapsed) = await flood;

            // Every measured message is delivered before the numbers are read.
            var expected = sentAt.Keys.Count(k => k.StartsWith('m'));
            await Eventually.TrueAsync(() => latencies.Count(l => l.Phase == 'm') >= expected, $"bob to receive all {expected} measured messages", TimeSpan.FromSeconds(30));
            var baseline = Percentiles(latencies.Where(l => l.Phase == 'q').Select(l => l.Ms));
            var during = Percentiles(latencies.Where(l => l.Phase == 'm').Select(l => l.Ms));
            var posts = Percentiles(postTimes.Where(p => p.Key[0] == 'm').Select(p => p.Value));
            var floodRate = (accepted + limited + other) / elapsed.TotalSeconds;
            output.WriteLine($"without the flood: {baseline}");
            output.WriteLine($"the POST alone during the flood: {posts}");
            output.WriteLine($"during the flood ({floodRate:F0} requests/s sent: {accepted} accepted, {limited} x 429, {other} other): {during}; {Volatile.Read(ref repeats.Value)} repeated deliveries in all");

            Assert.True(floodRate > FloodPerSecond * 0.5, $"the flood reached only {floodRate:F0} requests/s");
            Assert.True(limited > accepted, $"{limited} x 429 against {accepted} accepted");
            Assert.Equal(0, other);
            Assert.Equal(0, retryAfterMissing);

            // The per-user bucket (5/s, burst 20 by default) bounds what got through (with slack for the limiter's
            // replenishment timer running late on a loaded box).
            Assert.InRange(accepted, 1, 20 + (5 * 1.5 * elapsed.TotalSeconds));
            Assert.True(during.Count >= 300, $"only {during.Count} samples");
            // The bar is p99 < 100 ms, asserted whenever the machine meets it without the flood (quiet p99 at
            // most 50 ms). On a box too loaded for that (load 60-75 on 2 cores: the scheduler reaches each runnable
            // thread only every ~200 ms, and the victims' POSTs alone then show 200-300 ms outliers), the flood is held
            // to a median no worse than twice the quiet one and a p99 under 1 s, which still fails without the rate
            // limit (the other conversation's p50 was 6.1 s).
            if (baseline.P99 <= 50)
            {
                Assert.True(during.P99 < 100, $"live delivery p99 {during.P99:F1} ms during the flood (without it: {baseline})");
            }
            else
            {
                Assert.True(during.P50 <= (2 * baseline.P50) + 10, $"live delivery p50 {during.P50:F1} ms during the flood (without it: {baseline})");
                Assert.True(during.P99 < 1000, $"live delivery p99 {during.P99:F1} ms during the flood (without it: {baseline})");
            }
        }
        finally
        {
            await stop.CancelAsync();
            await receiver;
            bobHttp.Dispose();
            mallory.Dispose();
            foreach (var sender in senders)
            {
                sender.Dispose();
            }
        }
    }

    private static async Task<string> CreateAsync(HttpClient http, params string[] participants)
    {
        var response = await http.PostAsJsonAsync("/api/conversations", new { title = "t", participants });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Conversation>(ChatEvents.Json))!.Id;
    }

    // One message every 1/SenderRate s, each timed from just before its POST.
    private static async Task SendLoopAsync(HttpClient http, string conversation, string tag, ConcurrentDictionary<string, long> sentAt, ConcurrentDictionary<string, double> postTimes, TimeSpan duration, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        for (var n = 0; clock.Elapsed < duration; n++)
        {
            var text = $"{tag}-{n}";
            sentAt[text] = Stopwatch.GetTimestamp();
            var response = await http.PostAsJsonAsync($"/api/conversations/{conversation}/messages", new { text }, cancellationToken);
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
            postTimes[text] = Stopwatch.GetElapsedTime(sentAt[text]).TotalMilliseconds;
            var next = TimeSpan.FromSeconds((n + 1) / (double)SenderRate) - clock.Elapsed;
            if (next > TimeSpan.Zero)
            {
                await Task.Delay(next, cancellationToken);
            }
        }
    }

    private static async Task ReceiveAsync(ClientWebSocket bob, ConcurrentDictionary<string, long> sentAt, ConcurrentBag<(char, double)> latencies, StrongBox<int> repeats, CancellationToken cancellationToken)
    {
        var seen = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);
        var buffer = new byte[64 * 1024];
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var result = await bob.ReceiveAsync(buffer, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                var received = Stopwatch.GetTimestamp();
                using var frame = JsonDocument.Parse(buffer.AsMemory(0, result.Count));
                var text = frame.RootElement.GetProperty("message").GetProperty("text").GetString()!;
                if (!sentAt.TryGetValue(text, out var sent))
                {
                    continue;
                }

                // Live latency is the first arrival; a repeat (the dispatcher is at-least-once; clients keep
                // messages by id) is counted, not timed.
                if (seen.TryAdd(text, 0))
                {
                    latencies.Add((text[0], Stopwatch.GetElapsedTime(sent, received).TotalMilliseconds));
                }
                else
                {
                    Interlocked.Increment(ref repeats.Value);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // 1,000 requests/s, paced, over 16 concurrent loops; counts what the node answered.
    private static async Task<(int Accepted, int Limited, int Other, int RetryAfterMissing, TimeSpan Elapsed)> FloodAsync(HttpClient http, string conversation, TimeSpan duration)
    {
        const int Loops = 16;
        int accepted = 0, limited = 0, other = 0, missing = 0, next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Loops).Select(async _ =>
        {
            while (true)
            {
                var n = Interlocked.Increment(ref next);
                var due = TimeSpan.FromSeconds(n / (double)FloodPerSecond);
                if (due > duration)
                {
                    return;
                }

                var wait = due - clock.Elapsed; // read once: a second read could be later than due and make the delay negative
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }

                using var response = await http.PostAsJsonAsync($"/api/conversations/{conversation}/messages", new { text = $"spam-{n}" });
                switch (response.StatusCode)
                {
                    case HttpStatusCode.Accepted:
                        Interlocked.Increment(ref accepted);
                        break;
                    case HttpStatusCode.TooManyRequests:
                        Interlocked.Increment(ref limited);
                        if (response.Headers.RetryAfter is null)
                        {
                            Interlocked.Increment(ref missing);
                        }

                        break;
                    default:
                        Interlocked.Increment(ref other);
                        break;
                }
            }
        }));
        return (accepted, limited, other, missing, clock.Elapsed);
    }

    private static Summary Percentiles(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        double At(double q) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
        return new Summary(sorted.Length, At(0.5), At(0.99), sorted.Length == 0 ? double.NaN : sorted[^1]);
    }

    private sealed record Summary(int Count, double P50, double P99, double Max)
    {
        public override string ToString() => $"{Count} deliveries, p50 {P50:F1} ms, p99 {P99:F1} ms, max {Max:F1} ms";
    }
}
