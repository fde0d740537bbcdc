using System.Diagnostics;
using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class PresenceTests(RedisFixture redis, ITestOutputHelper output)
{
    [Fact]
    public async Task Register_MakesTheUserOnlineOnItsNode_WithoutASeparateHeartbeat()
    {
        await using var a = await TestNode.StartAsync(redis.ConnectionString, RedisFixture.UniquePrefix("reg"), "node-a");

        await a.Registry.RegisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));

        var lookup = await a.Registry.LocateAsync(["alice", "bob"]);
        Assert.Equal(["alice"], lookup.UsersByNode["node-a"]);
        Assert.Equal(["bob"], lookup.OfflineUsers);
    }

    [Fact]
    public async Task ConnectionCount_SpansNodes_AndUnregisterIsIdempotent()
    {
        var prefix = RedisFixture.UniquePrefix("count");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        await a.Registry.RegisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));
        await a.Registry.RegisterAsync(new ConnectionRegistration("c1", "alice", "node-a")); // idempotent
        await a.Registry.RegisterAsync(new ConnectionRegistration("c2", "alice", "node-a"));
        await b.Registry.RegisterAsync(new ConnectionRegistration("c3", "alice", "node-b"));

        Assert.Equal(3, await a.Registry.GetConnectionCountAsync("alice"));
        var lookup = await b.Registry.LocateAsync(["alice"]);
        Assert.Equal(["node-a", "node-b"], lookup.UsersByNode.Keys.Order(StringComparer.Ordinal));

        await a.Registry.UnregisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));
        await a.Registry.UnregisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));
        await a.Registry.UnregisterAsync(new ConnectionRegistration("never-registered", "alice", "node-a"));
        Assert.Equal(2, await a.Registry.GetConnectionCountAsync("alice"));

        await a.Registry.UnregisterAsync(new ConnectionRegistration("c2", "alice", "node-a"));
        await b.Registry.UnregisterAsync(new ConnectionRegistration("c3", "alice", "node-b"));
        Assert.Equal(0, await a.Registry.GetConnectionCountAsync("alice"));
        Assert.Equal(["alice"], (await a.Registry.LocateAsync(["alice"])).OfflineUsers);
    }

    private static readonly string[] HostileUserIds =
    [
        "a\nb",
        "a\r\n",
        "{chatscale}",
        "}{",
        "user}:u:node-a",
        "{chatscale:pr:0:0}:n:node-a",
        "ユーザー🙂",
        "\0",
        " ",
        new string('x', 1000),
        new string('é', 500),
    ];

    [Fact]
    public async Task HostileUserIds_EachGetTheirOwnKey_AndTravelThroughTheBackplane()
    {
        var prefix = RedisFixture.UniquePrefix("hostile");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var ids = HostileUserIds.Append("a").Append("a\n").ToArray();
        var transports = new List<FakeTransport>();
        foreach (var id in ids)
        {
            transports.Add(await b.ConnectAsync(id));
        }

        foreach (var id in ids)
        {
            Assert.Equal(1, await a.Registry.GetConnectionCountAsync(id));
        }

        var result = await a.PublishAsync("hi", ids);
        Assert.Empty(result.OfflineUsers);
        Assert.Equal(1, result.TargetedNodes);
        await Task.WhenAll(transports.Select(t => t.WaitForAsync(1)));
        Assert.All(transports, t => Assert.Equal(["hi"], t.Frames));

        // Removing one never touches a look-alike.
        var connectionId = b.Connections.GetConnections("a")[0].ConnectionId;
        await b.Registry.UnregisterAsync(new ConnectionRegistration(connectionId, "a", "node-b"));
        var lookup = await a.Registry.LocateAsync(ids);
        Assert.Equal(["a"], lookup.OfflineUsers);
        Assert.Equal(ids.Length - 1, lookup.UsersByNode["node-b"].Count);
    }

    [Fact]
    public async Task UserIdWithUnpairedSurrogate_IsRejected()
    {
        await using var a = await TestNode.StartAsync(redis.ConnectionString, RedisFixture.UniquePrefix("surrogate"), "node-a");

        await Assert.ThrowsAsync<ArgumentException>(() => a.Registry.RegisterAsync(new ConnectionRegistration("c1", "bad\uD800", "node-a")).AsTask());
        await Assert.ThrowsAsync<ArgumentException>(() => a.Registry.LocateAsync(["bad\uDC00"]).AsTask());
    }

    [Fact]
    public async Task CrashedNode_ItsUsersGoOfflineWithinThePresenceTimeout_AndItsKeysAreSwept()
    {
        var prefix = RedisFixture.UniquePrefix("crash");
        var timeout = TimeSpan.FromSeconds(3);
        Action<ChatScaleOptions> fast = o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            o.PresenceTimeout = timeout;
        };
        Action<ChatScaleRedisOptions> sweepOften = o => o.SweepInterval = TimeSpan.FromMilliseconds(250);

        // A: healthy, heartbeats and sweeps. X: registers 1,500 connections (more than one sweep batch), then "crashes":
        // it simply never heartbeats again.
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a", sweepOften, fast, startSweeper: true);
        await using var x = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-x", core: fast);
        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = HeartbeatLoopAsync(a, stopHeartbeat.Token);
        await a.ConnectAsync("alice");
        await Task.WhenAll(Enumerable.Range(0, 1500).Select(i => x.Registry.RegisterAsync(new ConnectionRegistration($"x-{i}", $"user-{i % 500}", "node-x")).AsTask()));
        var lastHeartbeatOfX = Stopwatch.StartNew();
        Assert.Equal(3, await a.Registry.GetConnectionCountAsync("user-7"));
        Assert.Equal(["user-7"], (await a.Registry.LocateAsync(["user-7"])).UsersByNode["node-x"]);

        await Eventually.TrueAsync(async () => (await a.Registry.LocateAsync(["user-7", "user-499"])).OfflineUsers.Count == 2, "node X's users to read offline");
        output.WriteLine($"X's users read offline {lastHeartbeatOfX.ElapsedMilliseconds} ms after its last heartbeat (timeout {timeout.TotalMilliseconds} ms)");
        Assert.Equal(0, await a.Registry.GetConnectionCountAsync("user-7"));

        var db = a.Multiplexer.GetDatabase();
        await Eventually.TrueAsync(async () => await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-x") == 0, "node X's entries to be swept");
        Assert.False(await db.KeyExistsAsync(PresenceKeys.User(prefix, "user-7")));
        await Eventually.TrueAsync(async () => await db.SortedSetScoreAsync(PresenceKeys.Heartbeats(prefix), "node-x") is null, "node X's heartbeat to be forgotten");
        await Eventually.TrueAsync(() => a.Swept.GetMeasurementSnapshot().Sum(m => m.Value) == 1500, "1,500 swept entries to be counted");

        // The healthy node and its user were never touched.
        Assert.Equal(1, await a.Registry.GetConnectionCountAsync("alice"));
        Assert.NotNull(await db.SortedSetScoreAsync(PresenceKeys.Heartbeats(prefix), "node-a"));
        await stopHeartbeat.CancelAsync();
        await heartbeat;
    }

    [Fact]
    public async Task RemoveNode_TakesAllItsConnectionsOffline_AndDeletesItsKeys()
    {
        var prefix = RedisFixture.UniquePrefix("remove");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        await Task.WhenAll(Enumerable.Range(0, 2500).Select(i => b.Registry.RegisterAsync(new ConnectionRegistration($"b-{i}", $"user-{i}", "node-b")).AsTask()));
        await a.Registry.RegisterAsync(new ConnectionRegistration("a-1", "user-1", "node-a"));

        await b.Registry.RemoveNodeAsync("node-b");

        var lookup = await a.Registry.LocateAsync(["user-0", "user-1", "user-2499"]);
        Assert.Equal(["user-0", "user-2499"], lookup.OfflineUsers);
        Assert.Equal(["user-1"], lookup.UsersByNode["node-a"]);
        var db = a.Multiplexer.GetDatabase();
        Assert.Equal(0, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-b"));
        Assert.False(await db.KeyExistsAsync(PresenceKeys.User(prefix, "user-0")));
        Assert.Null(await db.SortedSetScoreAsync(PresenceKeys.Heartbeats(prefix), "node-b"));
        Assert.Equal(3, (await PresenceKeys.AllAsync(a.Multiplexer, prefix)).Count); // user-1's hash, node A's index and digest in its bucket
    }

    [Fact]
    public async Task Heartbeat_KeepsANodeOnline_PastThePresenceTimeout()
    {
        var prefix = RedisFixture.UniquePrefix("alive");
        Action<ChatScaleOptions> fast = o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(100);
            o.PresenceTimeout = TimeSpan.FromSeconds(2);
        };
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a", core: fast);
        using var stop = new CancellationTokenSource();
        var heartbeat = HeartbeatLoopAsync(a, stop.Token);
        await a.ConnectAsync("alice");

        // Watch for two and a half timeouts' worth of time, polling: alice never reads offline while A heartbeats.
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            Assert.Equal(1, await a.Registry.GetConnectionCountAsync("alice"));
            await Task.Delay(100);
        }

        await stop.CancelAsync();
        await heartbeat;
    }

    // Stands in for the AspNetCore package's heartbeat service.
    private static async Task HeartbeatLoopAsync(TestNode node, CancellationToken stop)
    {
        var interval = node.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ChatScaleOptions>>().Value.HeartbeatInterval;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await node.Registry.HeartbeatAsync(node.NodeId, stop);
                await Task.Delay(interval, stop);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
