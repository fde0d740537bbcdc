using ChatScale.Redis.Tests.Infrastructure;

namespace ChatScale.Redis.Tests;

/// <summary>
/// A live node whose presence Redis lost (a restart without persistence, or a sweep while the node was cut off longer
/// than the presence timeout) gets it back on its next heartbeat, without resurrecting connections that closed.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class PresenceRestoreTests(RedisFixture redis)
{
    [Fact]
    public async Task Heartbeat_AfterPresenceWasWiped_RestoresTheNodesConnections()
    {
        var prefix = RedisFixture.UniquePrefix("restore");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        for (var i = 0; i < 1200; i++)
        {
            await a.Registry.RegisterAsync(new ConnectionRegistration($"a-{i}", $"user-{i % 400}", "node-a"));
        }

        await b.Registry.RegisterAsync(new ConnectionRegistration("b-1", "bob", "node-b"));

        // What a Redis restart without persistence does to this prefix: every presence key is gone.
        await DeletePresenceAsync(a, prefix);
        Assert.Equal(400, (await b.Registry.LocateAsync(Users(400))).OfflineUsers.Count);

        await a.Registry.HeartbeatAsync("node-a");

        var lookup = await b.Registry.LocateAsync(Users(400));
        Assert.Empty(lookup.OfflineUsers);
        Assert.Equal(400, lookup.UsersByNode["node-a"].Count);
        Assert.Equal(3, await b.Registry.GetConnectionCountAsync("user-7"));
        Assert.Equal(1, a.LogCount(2203));

        // Node B restores only its own connection, on its own heartbeat.
        Assert.Equal(0, await a.Registry.GetConnectionCountAsync("bob"));
        await b.Registry.HeartbeatAsync("node-b");
        Assert.Equal(1, await a.Registry.GetConnectionCountAsync("bob"));
    }

    [Fact]
    public async Task Heartbeat_WhenPresenceIsIntact_WritesNothingBack()
    {
        var prefix = RedisFixture.UniquePrefix("intact");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await a.Registry.RegisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));

        await a.Registry.HeartbeatAsync("node-a");
        await a.Registry.HeartbeatAsync("node-a");

        Assert.Equal(0, a.LogCount(2203));
    }

    [Fact]
    public async Task Heartbeats_DuringAConnectStorm_NeverMistakeInFlightRegistrationsForLostPresence()
    {
        var prefix = RedisFixture.UniquePrefix("storm");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        using var stop = new CancellationTokenSource();
        var heartbeats = 0;
        var heartbeating = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await a.Registry.HeartbeatAsync("node-a");
                heartbeats++;
            }
        });

        // 4,000 connections open (and half of them close again) in parallel while the node heartbeats back to back.
        await Parallel.ForAsync(0, 4000, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
        {
            var c = new ConnectionRegistration($"c{i}", $"user-{i % 700}", "node-a");
            await a.Registry.RegisterAsync(c, ct);
            if (i % 2 == 0)
            {
                await a.Registry.UnregisterAsync(c, ct);
            }
        });
        await stop.CancelAsync();
        await heartbeating;

        Assert.True(heartbeats > 10, $"only {heartbeats} heartbeats ran during the storm");
        Assert.Equal(0, a.LogCount(2203));
        Assert.Equal(2000, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-a"));

        // A real loss is still seen.
        await DeletePresenceAsync(a, prefix);
        await a.Registry.HeartbeatAsync("node-a");
        Assert.Equal(1, a.LogCount(2203));
        Assert.Equal(2000, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-a"));
    }

    [Fact]
    public async Task Heartbeat_AfterAWipe_NeverResurrectsAConnectionThatClosed()
    {
        var prefix = RedisFixture.UniquePrefix("closed");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await a.Registry.RegisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));
        await a.Registry.RegisterAsync(new ConnectionRegistration("c2", "carol", "node-a"));
        await DeletePresenceAsync(a, prefix);

        // Carol disconnects while presence is gone (her unregister finds nothing to delete), then the heartbeat restores.
        await a.Registry.UnregisterAsync(new ConnectionRegistration("c2", "carol", "node-a"));
        await a.Registry.HeartbeatAsync("node-a");

        var lookup = await a.Registry.LocateAsync(["alice", "carol"]);
        Assert.Equal(["alice"], lookup.UsersByNode["node-a"]);
        Assert.Equal(["carol"], lookup.OfflineUsers);
    }

    [Fact]
    public async Task Heartbeat_AfterTheNodeWasSweptAsDead_RestoresItsConnections()
    {
        var prefix = RedisFixture.UniquePrefix("swept");
        Action<ChatScaleOptions> fast = o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(100);
            o.PresenceTimeout = TimeSpan.FromMilliseconds(500);
        };
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a", core: fast);
        await using var sweeper = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-s", o => o.SweepInterval = TimeSpan.FromMilliseconds(100), fast, startSweeper: true);
        await a.Registry.RegisterAsync(new ConnectionRegistration("c1", "alice", "node-a"));

        // Node A is cut off (no heartbeat) for longer than the timeout: the sweeper deletes its presence.
        await Eventually.TrueAsync(async () => await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-a") == 0, "node A to be swept");
        Assert.Equal(0, await sweeper.Registry.GetConnectionCountAsync("alice"));

        // A comes back: its first heartbeat restores alice.
        await a.Registry.HeartbeatAsync("node-a");
        Assert.Equal(1, await sweeper.Registry.GetConnectionCountAsync("alice"));
    }

    private static string[] Users(int count) => Enumerable.Range(0, count).Select(i => $"user-{i}").ToArray();

    private static Task DeletePresenceAsync(TestNode node, string prefix) => PresenceKeys.WipeAsync(node.Multiplexer, prefix);
}
