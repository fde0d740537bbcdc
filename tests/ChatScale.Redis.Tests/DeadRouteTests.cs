using ChatScale.Connections;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests;

/// <summary>
/// A route that cannot deliver is never reported delivered: a node channel with no subscriber puts its users in
/// OfflineUsers, and a node whose listener lost its subscription stops claiming its users, says so, and after it
/// resubscribes closes its clients with 1012 so they reconnect and catch up.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class DeadRouteTests(RedisFixture redis)
{
    [Fact]
    public async Task Publish_ToANodeWhoseChannelHasNoSubscriber_ReportsItsUsersOffline()
    {
        var prefix = RedisFixture.UniquePrefix("dead-route");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        var alice = await a.ConnectAsync("alice");

        // Node Z heartbeats and holds zed and alice's second connection, but nothing listens on its channel.
        await a.Registry.RegisterAsync(new ConnectionRegistration("z1", "zed", "node-z"));
        await a.Registry.RegisterAsync(new ConnectionRegistration("z2", "alice", "node-z"));
        await a.Registry.HeartbeatAsync("node-z");
        Assert.Equal(2, (await a.Registry.LocateAsync(["zed", "alice"])).UsersByNode.Count);

        var result = await a.PublishAsync("hi", "zed", "alice");

        Assert.Equal(["zed"], result.OfflineUsers);   // alice was reached on node A, so she is not offline
        Assert.Equal(1, result.TargetedNodes);
        await alice.WaitForAsync(1);
    }

    [Fact]
    public async Task ListenerThatLosesItsSubscription_IsNotReceiving_ItsUsersReadOffline_AndOnResubscribeItsClientsGet1012()
    {
        var prefix = RedisFixture.UniquePrefix("lost-sub");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(proxy.ConnectionString + ",connectRetry=10", prefix, "node-b");
        var readiness = b.Services.GetRequiredService<BackplaneReadiness>();
        Assert.True(readiness.IsReceiving);
        var bob = await b.ConnectAsync("bob");
        Assert.Empty((await a.PublishAsync("before", "bob")).OfflineUsers);
        await bob.WaitForAsync(1);

        // B's connections to Redis drop: its subscription is gone although its presence entries are still there.
        await proxy.CutAsync();
        await Eventually.TrueAsync(() => !readiness.IsReceiving, "node B to know it is not receiving");
        var during = await a.PublishAsync("during", "bob");
        Assert.Equal(["bob"], during.OfflineUsers);   // reported, never silently "delivered"
        Assert.Equal(0, during.TargetedNodes);

        proxy.Release();
        await Eventually.TrueAsync(() => readiness.IsReceiving, "node B to resubscribe");
        await Eventually.TrueAsync(() => bob.ClosedWith is not null, "bob's connection to be closed");
        Assert.Equal(ConnectionCloseStatus.ServiceRestart, bob.ClosedWith);
        Assert.Equal(["before"], bob.Frames);

        // A fresh connection (the client reconnecting) is reachable again.
        var bobAgain = await b.ConnectAsync("bob");
        Assert.Empty((await a.PublishAsync("after", "bob")).OfflineUsers);
        await bobAgain.WaitForAsync(1);
    }

    [Fact]
    public async Task NodeThatIsNotReceiving_StopsHeartbeating_SoItsUsersGoOfflineEverywhere()
    {
        var prefix = RedisFixture.UniquePrefix("no-claim");
        Action<ChatScaleOptions> fast = o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(100);
            o.PresenceTimeout = TimeSpan.FromMilliseconds(600);
        };
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a", core: fast);
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b", core: fast);
        await b.ConnectAsync("bob");
        await b.Registry.HeartbeatAsync("node-b");
        var db = a.Multiplexer.GetDatabase();
        var claimed = await db.SortedSetScoreAsync(PresenceKeys.Heartbeats(prefix), "node-b");

        b.Services.GetRequiredService<BackplaneReadiness>().MarkNotReceiving("test: listener not subscribed");
        await b.Registry.HeartbeatAsync("node-b");
        await b.Registry.HeartbeatAsync("node-b");

        Assert.Equal(claimed, await db.SortedSetScoreAsync(PresenceKeys.Heartbeats(prefix), "node-b"));
        await Eventually.TrueAsync(async () => (await a.Registry.LocateAsync(["bob"])).OfflineUsers.Count == 1, "bob to read offline on node A");
    }

    [Fact]
    public async Task NodeThatNeverClaimedItsUsers_HasItsEntriesSwept_AndRestoresThemOnceItReceives()
    {
        var prefix = RedisFixture.UniquePrefix("never-claimed");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var readiness = b.Services.GetRequiredService<BackplaneReadiness>();
        var db = a.Multiplexer.GetDatabase();

        // B's listener never got its first subscription (a degraded start): B has never claimed anyone when bob connects.
        readiness.MarkNotReceiving("test: first subscribe timed out");
        await b.ConnectAsync("bob");
        await b.Registry.HeartbeatAsync("node-b");
        Assert.Equal(0, await db.SortedSetScoreAsync(PresenceKeys.Heartbeats(prefix), "node-b"));   // known, never alive
        Assert.Equal(1, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-b"));
        Assert.Equal(["bob"], (await a.Registry.LocateAsync(["bob"])).OfflineUsers);

        // Any node's sweep finds B (before, B was absent from the heartbeats and its entries were never swept), and B's
        // own heartbeats do not put them back while it cannot receive.
        var removed = await a.Services.GetRequiredService<RedisConnectionRegistry>().SweepAsync(CancellationToken.None);
        Assert.Equal(1, removed);
        await b.Registry.HeartbeatAsync("node-b");
        Assert.Equal(0, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-b"));
        Assert.False(await db.KeyExistsAsync(PresenceKeys.User(prefix, "bob")));

        // Once B receives, its first heartbeat claims and restores bob, who is reachable again.
        readiness.MarkReceiving();
        await b.Registry.HeartbeatAsync("node-b");
        Assert.Equal(1, await PresenceKeys.NodeEntriesAsync(a.Multiplexer, prefix, "node-b"));
        Assert.Empty((await a.PublishAsync("back", "bob")).OfflineUsers);
    }
}
