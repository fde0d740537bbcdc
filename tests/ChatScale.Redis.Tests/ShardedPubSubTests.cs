using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests;

/// <summary>Sharded pub/sub (SPUBLISH/SSUBSCRIBE) and presence on a local three-master Redis Cluster.</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class ShardedPubSubTests(RedisClusterFixture cluster, ITestOutputHelper output)
{
    [Fact]
    public async Task Sharded_TargetedAndAllNodesMessages_CrossTheClusterWithSpublishOnly()
    {
        var prefix = RedisFixture.UniquePrefix("sharded");
        Action<ChatScaleRedisOptions> sharded = o => o.UseShardedPubSub = true;
        await using var a = await TestNode.StartAsync(cluster.ConnectionString, prefix, "node-a", sharded);
        await using var b = await TestNode.StartAsync(cluster.ConnectionString, prefix, "node-b", sharded);
        await using var c = await TestNode.StartAsync(cluster.ConnectionString, prefix, "node-c", sharded);
        var alice = await a.ConnectAsync("alice");
        var bob = await b.ConnectAsync("bob");
        var carol = await c.ConnectAsync("carol");

        await using var admin = await cluster.ConnectAsync(allowAdmin: true);
        var masters = admin.GetServers().Where(s => !s.IsReplica).ToArray();
        Assert.Equal(3, masters.Length);
        var before = await CommandStats.SnapshotAsync(masters);

        var result = await a.PublishAsync("hello", "bob", "carol", "ghost");
        await a.Broadcaster.PublishToAllAsync("everyone"u8.ToArray());

        Assert.Equal(2, result.TargetedNodes);
        Assert.Equal(["ghost"], result.OfflineUsers);
        await Task.WhenAll(bob.WaitForAsync(2), carol.WaitForAsync(2), alice.WaitForAsync(1));
        // Two channels (the node's and the all-nodes one, possibly on different shards): no order between them.
        Assert.Equal(["everyone", "hello"], bob.Frames.Order(StringComparer.Ordinal));
        Assert.Equal(["everyone", "hello"], carol.Frames.Order(StringComparer.Ordinal));
        Assert.Equal(["everyone"], alice.Frames);

        var delta = CommandStats.Delta(before, await CommandStats.SnapshotAsync(masters));
        output.WriteLine($"cluster-wide: {CommandStats.Format(delta)}");
        Assert.Equal(3, delta.GetValueOrDefault("spublish")); // one per hosting node + one to all nodes
        Assert.Equal(0, delta.GetValueOrDefault("publish"));

        var slots = new[] { "node-a", "node-b", "node-c" }
            .Select(n => admin.HashSlot($"{prefix}:bp:node:{n}"))
            .Append(admin.HashSlot($"{prefix}:bp:all"));
        output.WriteLine($"channel slots (node-a, node-b, node-c, all): {string.Join(", ", slots)}");
    }

    [Fact]
    public async Task Presence_MultiKeyScriptsRunOnTheCluster_WithoutCrossSlotErrors()
    {
        var prefix = RedisFixture.UniquePrefix("cluster-presence");
        await using var a = await TestNode.StartAsync(cluster.ConnectionString, prefix, "node-a", o => o.UseShardedPubSub = true);
        var users = Enumerable.Range(0, 100).Select(i => $"user-{i}").ToArray();
        foreach (var user in users)
        {
            await a.ConnectAsync(user);
        }

        var lookup = await a.Registry.LocateAsync([.. users, "ghost"]);
        Assert.Equal(100, lookup.UsersByNode["node-a"].Count);
        Assert.Equal(["ghost"], lookup.OfflineUsers);
        Assert.Equal(1, await a.Registry.GetConnectionCountAsync("user-42"));

        await a.Registry.RemoveNodeAsync("node-a");
        Assert.Equal(101, (await a.Registry.LocateAsync([.. users, "ghost"])).OfflineUsers.Count);
    }

    [Fact]
    public async Task Presence_SpreadsOverEveryMaster_AndLookupsOfManyUsersArePipelinedPerShard()
    {
        var prefix = RedisFixture.UniquePrefix("spread");
        await using var a = await TestNode.StartAsync(cluster.ConnectionString, prefix, "node-a", o => o.UseShardedPubSub = true);
        await using var b = await TestNode.StartAsync(cluster.ConnectionString, prefix, "node-b", o => o.UseShardedPubSub = true);
        var users = Enumerable.Range(0, 600).Select(i => $"user-{i}").ToArray();
        await Task.WhenAll(users.Select((u, i) => (i % 2 == 0 ? a : b).ConnectAsync(u)));

        await using var admin = await cluster.ConnectAsync(allowAdmin: true);
        var masters = admin.GetServers().Where(s => !s.IsReplica).ToArray();
        var keysPerMaster = new long[masters.Length];
        for (var m = 0; m < masters.Length; m++)
        {
            await foreach (var _ in masters[m].KeysAsync(pattern: "{" + prefix + ":pr:*"))
            {
                keysPerMaster[m]++;
            }
        }

        var before = await Task.WhenAll(masters.Select(m => CommandStats.SnapshotAsync(m)));
        for (var round = 0; round < 10; round++)
        {
            var lookup = await a.Registry.LocateAsync(users);
            Assert.Empty(lookup.OfflineUsers);
            Assert.Equal(300, lookup.UsersByNode["node-b"].Count);
        }

        var after = await Task.WhenAll(masters.Select(m => CommandStats.SnapshotAsync(m)));
        var hvals = masters.Select((_, m) => CommandStats.Delta(before[m], after[m]).GetValueOrDefault("hvals")).ToArray();
        var scripts = masters.Select((_, m) => CommandStats.Delta(before[m], after[m]).GetValueOrDefault("evalsha")).ToArray();
        output.WriteLine($"presence keys per master: {string.Join(", ", keysPerMaster)}; HVALS per master over 10 lookups of 600 users: {string.Join(", ", hvals)}; EVALSHA: {string.Join(", ", scripts)}");

        Assert.Equal(6000, hvals.Sum()); // one HVALS per user, no script, no per-lookup heartbeat read
        Assert.All(keysPerMaster, k => Assert.True(k > 0));
        Assert.All(hvals, h => Assert.InRange(h, 1, 6000 * 1.5 / 3)); // no master above 1.5x its fair share
        Assert.True(scripts.Sum() < 10, "liveness is refreshed in the background, not read per lookup");
    }
}
