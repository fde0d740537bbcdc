using System.Collections.Concurrent;
using System.Diagnostics;
using ChatScale.Testing;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using ChatScale.Reliability.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>
/// A node frozen (<c>SIGSTOP</c>: a VM pause, a stop-the-world stall) past the presence timeout, then resumed
/// (<c>SIGCONT</c>), while another node keeps publishing to a user connected to it. What the README promises: while the
/// frozen node's heartbeat is older than the presence timeout its users are reported offline (so the caller pushes to
/// them), never counted as delivered and lost; once it runs again it claims its users on its next heartbeat and they
/// are reachable again; every publish that was counted as delivered to the user reaches them, in order, on a
/// connection that stayed open (or the connection is closed with 1012 so the client catches up from history).
/// </summary>
[Collection(SharedRedis.Name)]
public sealed class FrozenNodeTests(RedisFixture redis, ITestOutputHelper output)
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PresenceTimeout = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Frozen = TimeSpan.FromSeconds(7);

    [Fact]
    public async Task A_node_frozen_past_the_presence_timeout_has_its_users_reported_offline_and_serves_them_again_after_it_resumes()
    {
        var prefix = RedisFixture.UniquePrefix("freeze");
        await using var child = await ChildSampleNode.StartAsync(
            4096,
            redis.ConnectionString,
            prefix,
            "--ChatScale:NodeId=freeze-a",
            $"--ChatScale:HeartbeatInterval={Heartbeat:c}",
            $"--ChatScale:PresenceTimeout={PresenceTimeout:c}");
        await using var publisher = await ChatHost.StartAsync(redis.ConnectionString, prefix, o =>
        {
            o.NodeId = "freeze-b";
            o.HeartbeatInterval = Heartbeat;
            o.PresenceTimeout = PresenceTimeout;
        });

        var (http, token) = await child.SignInAsync("alice");
        using var _ = http;
        using var alice = new ClientWebSocket();
        using (var connect = new CancellationTokenSource(Ws.Timeout))
        {
            await alice.ConnectAsync(child.WebSocketUri(token), connect.Token);
        }

        var received = new ConcurrentQueue<int>();
        var reading = ReadAsync(alice, received);
        await Eventually.TrueAsync(async () => (await publisher.Registry.LocateAsync(["alice"])).UsersByNode.ContainsKey("freeze-a"), "alice online on the child node");

        var clock = Stopwatch.StartNew();
        var claimed = new List<int>(); // publishes counted as delivered to alice
        var log = new List<string>();
        var next = 0;
        async Task<bool> PublishAsync()
        {
            var n = next++;
            var result = await publisher.Broadcaster.PublishAsync(["alice"], Encoding.UTF8.GetBytes($"{{\"n\":{n}}}"));
            var offline = result.OfflineUsers.Contains("alice");
            if (!offline)
            {
                claimed.Add(n);
            }

            log.Add($"{clock.ElapsedMilliseconds,6} ms publish {n}: {(offline ? "offline" : $"delivered to {result.TargetedNodes} node(s)")}");
            return !offline;
        }

        Assert.True(await PublishAsync(), "alice is reachable before the freeze");
        await Eventually.TrueAsync(() => received.Contains(0), "alice received the first message");

        Assert.Equal(0, ProcessSignal.Send(child.ProcessId, "STOP"));
        log.Add($"{clock.ElapsedMilliseconds,6} ms SIGSTOP");
        var frozenAt = clock.Elapsed;
        TimeSpan? offlineAt = null;
        while (clock.Elapsed - frozenAt < Frozen)
        {
            if (!await PublishAsync())
            {
                offlineAt ??= clock.Elapsed - frozenAt;
            }

            await Task.Delay(250);
        }

        Assert.Equal(0, ProcessSignal.Send(child.ProcessId, "CONT"));
        var resumedAt = clock.Elapsed;
        log.Add($"{clock.ElapsedMilliseconds,6} ms SIGCONT");
        TimeSpan? reachableAfter = null;
        var deadline = Stopwatch.StartNew();
        while (reachableAfter is null && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (await PublishAsync())
            {
                reachableAfter = clock.Elapsed - resumedAt;
            }
            else
            {
                await Task.Delay(100);
            }
        }

        for (var i = 0; i < 10; i++)
        {
            Assert.True(await PublishAsync(), "alice stays reachable after the node resumed");
        }

        var last = claimed[^1];
        await Eventually.TrueAsync(() => received.Contains(last) || reading.IsCompleted, "alice received the last message, or her connection closed");
        foreach (var line in log)
        {
            output.WriteLine(line);
        }

        output.WriteLine($"offline {Ms(offlineAt)} after the freeze; reachable {Ms(reachableAfter)} after the resume; alice received {received.Count} of {claimed.Count} publishes counted as delivered");

        Assert.True(offlineAt is not null, "alice was reported offline while her node was frozen past the presence timeout");
        Assert.True(offlineAt < PresenceTimeout + Heartbeat + TimeSpan.FromSeconds(2), $"alice was reported offline only {offlineAt} after the freeze");
        Assert.True(reachableAfter is not null, "alice was reachable again after her node resumed");
        Assert.True(reachableAfter < Heartbeat * 3 + TimeSpan.FromSeconds(2), $"alice was reachable again only {reachableAfter} after the resume");
        if (reading.IsCompleted)
        {
            // The node's subscription was lost while it was frozen: it closes its connections with 1012 (Service
            // Restart) so they reconnect and catch up from history, never leaving them open with a gap.
            Assert.Equal((WebSocketCloseStatus)1012, await reading);
        }
        else
        {
            // Nothing counted as delivered was lost, and it arrived in order.
            Assert.Equal(claimed, received.ToArray());
        }

        await alice.CloseQuietlyAsync();
    }

    private static async Task<WebSocketCloseStatus?> ReadAsync(ClientWebSocket socket, ConcurrentQueue<int> received)
    {
        var buffer = new byte[4096];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return result.CloseStatus;
            }

            var text = Encoding.UTF8.GetString(buffer, 0, result.Count);
            received.Enqueue(int.Parse(text["{\"n\":".Length..^1], CultureInfo.InvariantCulture));
        }
    }

    private static string Ms(TimeSpan? span) => span is { } s ? $"{s.TotalMilliseconds:F0} ms" : "never";
}
