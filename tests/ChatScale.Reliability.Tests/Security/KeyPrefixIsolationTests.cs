using ChatScale.Reliability.Tests.Infrastructure;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>Two apps on one Redis with different KeyPrefix values never see each other's messages or presence.</summary>
[Collection(SharedRedis.Name)]
public sealed class KeyPrefixIsolationTests(RedisFixture redis)
{
    [Fact]
    public async Task Two_apps_with_different_prefixes_on_one_Redis_never_see_each_others_messages_or_presence()
    {
        // "iso-x" and "iso-x.y": one prefix starts with the other, the closest the validator allows to overlapping.
        var unique = Guid.NewGuid().ToString("N")[..8];
        var prefixA = $"iso-{unique}";
        var prefixB = $"iso-{unique}.b";
        await using var a1 = await ChatHost.StartAsync(redis.ConnectionString, prefixA, o => o.NodeId = "shared-node-1");
        await using var a2 = await ChatHost.StartAsync(redis.ConnectionString, prefixA, o => o.NodeId = "shared-node-2");
        // The same node ids in app B: node channels must still be distinct.
        await using var b1 = await ChatHost.StartAsync(redis.ConnectionString, prefixB, o => o.NodeId = "shared-node-1");
        await using var b2 = await ChatHost.StartAsync(redis.ConnectionString, prefixB, o => o.NodeId = "shared-node-2");

        using var aliceA = await a2.ConnectAsync("alice");
        using var aliceB = await b2.ConnectAsync("alice");
        using var onlyInB = await b1.ConnectAsync("bob");
        await Eventually.TrueAsync(async () => (await a1.Registry.LocateAsync(["alice"])).UsersByNode.ContainsKey("shared-node-2")
            && (await b1.Registry.LocateAsync(["alice", "bob"])).OfflineUsers.Count == 0, "presence in both apps");

        // Presence: app A does not see app B's bob, and counts only its own alice.
        var lookup = await a1.Registry.LocateAsync(["bob"]);
        Assert.Equal(["bob"], lookup.OfflineUsers);
        Assert.Equal(1, await a1.Registry.GetConnectionCountAsync("alice"));

        // Messages: targeted and to-all publishes of app A reach only app A's alice.
        var targeted = await a1.Broadcaster.PublishAsync(["alice", "bob"], "{\"app\":\"A\",\"n\":1}"u8.ToArray());
        Assert.Equal(["bob"], targeted.OfflineUsers);
        await a1.Broadcaster.PublishToAllAsync("{\"app\":\"A\",\"n\":2}"u8.ToArray());
        Assert.Equal("{\"app\":\"A\",\"n\":1}", await aliceA.ReceiveTextAsync());
        Assert.Equal("{\"app\":\"A\",\"n\":2}", await aliceA.ReceiveTextAsync());

        // App B's clients' next frames are app B's own markers: nothing from app A arrived before them.
        await b1.Broadcaster.PublishToAllAsync("{\"app\":\"B\"}"u8.ToArray());
        Assert.Equal("{\"app\":\"B\"}", await aliceB.ReceiveTextAsync());
        Assert.Equal("{\"app\":\"B\"}", await onlyInB.ReceiveTextAsync());

        await aliceA.CloseQuietlyAsync();
        await aliceB.CloseQuietlyAsync();
        await onlyInB.CloseQuietlyAsync();
    }
}
