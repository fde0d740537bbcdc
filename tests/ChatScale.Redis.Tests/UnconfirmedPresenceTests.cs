using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Redis.Tests;

/// <summary>
/// Presence never outlives a connection because Redis did not answer: a register that timed out after it ran is
/// undone, an unregister that failed is retried until Redis confirms, and the heartbeat reconciles by set, so ghosts
/// and losses of equal count are both repaired.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class UnconfirmedPresenceTests(RedisFixture redis)
{
    [Fact]
    public async Task RegisterWhoseReplyTimesOut_AfterItRan_LeavesNoPresence_WithinTwoHeartbeats()
    {
        var prefix = RedisFixture.UniquePrefix("reg-timeout");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await TestNode.StartAsync(proxy.ConnectionString + ",asyncTimeout=300,syncTimeout=300", prefix, "node-a");
        await using var observer = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-o");
        await a.Registry.HeartbeatAsync("node-a");
        var users = Enumerable.Range(0, 20).Select(i => $"user-{i}").ToArray();

        // Requests reach Redis (the scripts run), replies are held: every register times out after it ran.
        proxy.StallReplies();
        var failures = await Task.WhenAll(users.Select((u, i) => Assert.ThrowsAsync<BackplaneUnavailableException>(
            () => a.Registry.RegisterAsync(new ConnectionRegistration($"c{i}", u, "node-a")).AsTask())));
        Assert.All(failures, f => Assert.Contains("may or may not have run", f.Message, StringComparison.Ordinal));
        Assert.Equal(20, (await observer.Registry.LocateAsync(users)).UsersByNode["node-a"].Count); // they did run
        Assert.Equal(20, a.Services.GetRequiredService<RedisConnectionRegistry>().UnconfirmedCount("node-a"));
        proxy.Release();

        // The callers gave up on those connections (no unregister). Within two heartbeats, Redis holds none of them.
        await a.Registry.HeartbeatAsync("node-a");
        if ((await observer.Registry.LocateAsync(users)).OfflineUsers.Count != users.Length)
        {
            await a.Registry.HeartbeatAsync("node-a");
        }

        Assert.Equal(users.Length, (await observer.Registry.LocateAsync(users)).OfflineUsers.Count);
        Assert.Equal(0, await PresenceKeys.NodeEntriesAsync(observer.Multiplexer, prefix, "node-a"));
        Assert.Equal(0, a.Services.GetRequiredService<RedisConnectionRegistry>().UnconfirmedCount("node-a"));
    }

    [Fact]
    public async Task UnregisterThatFails_WhileRedisIsCutOff_IsRetriedUntilConfirmed_WithinTwoHeartbeats()
    {
        var prefix = RedisFixture.UniquePrefix("unreg-fail");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await TestNode.StartAsync(proxy.ConnectionString + ",asyncTimeout=1000,connectRetry=10", prefix, "node-a");
        await using var observer = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-o");
        var alice = new ConnectionRegistration("c1", "alice", "node-a");
        var bob = new ConnectionRegistration("c2", "bob", "node-a");
        await a.Registry.RegisterAsync(alice);
        await a.Registry.RegisterAsync(bob);

        // Redis is unreachable for a moment while alice disconnects: her unregister fails.
        await proxy.CutAsync();
        await Assert.ThrowsAsync<BackplaneUnavailableException>(() => a.Registry.UnregisterAsync(alice).AsTask());
        Assert.Equal(1, await observer.Registry.GetConnectionCountAsync("alice")); // a ghost, for now
        proxy.Release();
        await Eventually.TrueAsync(() => a.Multiplexer.IsConnected, "node A to reconnect");

        await a.Registry.HeartbeatAsync("node-a");
        if (await observer.Registry.GetConnectionCountAsync("alice") != 0)
        {
            await a.Registry.HeartbeatAsync("node-a");
        }

        Assert.Equal(0, await observer.Registry.GetConnectionCountAsync("alice"));
        Assert.Equal(1, await observer.Registry.GetConnectionCountAsync("bob"));
        Assert.Equal(0, a.Services.GetRequiredService<RedisConnectionRegistry>().UnconfirmedCount("node-a"));
    }

    [Fact]
    public async Task Heartbeat_RepairsGhostsAndLossesOfEqualCount_BothOfThem()
    {
        var prefix = RedisFixture.UniquePrefix("ghost-loss");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var other = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-o");
        for (var i = 0; i < 6; i++)
        {
            await a.Registry.RegisterAsync(new ConnectionRegistration($"real-{i}", $"real-{i}", "node-a"));
        }

        // Behind node A's back: three of its real entries vanish, three entries it never held appear. Redis still holds
        // six connections for node A, as many as it has: a count would see nothing wrong.
        for (var i = 0; i < 3; i++)
        {
            await other.Registry.UnregisterAsync(new ConnectionRegistration($"real-{i}", $"real-{i}", "node-a"));
            await other.Registry.RegisterAsync(new ConnectionRegistration($"ghost-{i}", $"ghost-{i}", "node-a"));
        }

        Assert.Equal(6, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-a"));
        string[] everyone = [.. Enumerable.Range(0, 6).Select(i => $"real-{i}"), .. Enumerable.Range(0, 3).Select(i => $"ghost-{i}")];

        await a.Registry.HeartbeatAsync("node-a");

        var lookup = await other.Registry.LocateAsync(everyone);
        Assert.Equal(6, lookup.UsersByNode["node-a"].Count);
        Assert.All(lookup.UsersByNode["node-a"], u => Assert.StartsWith("real-", u, StringComparison.Ordinal));
        Assert.Equal(["ghost-0", "ghost-1", "ghost-2"], lookup.OfflineUsers.Order(StringComparer.Ordinal));
        Assert.Equal(1, a.LogCount(2203));

        // The repaired digest agrees with the node's own (computed by the scripts in Lua and by the node in C#).
        await a.Registry.HeartbeatAsync("node-a");
        await a.Registry.HeartbeatAsync("node-a");
        Assert.Equal(1, a.LogCount(2203));
    }
}
