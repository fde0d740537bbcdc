using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace ChatScale.AspNetCore.Tests;

/// <summary>Two real Kestrel nodes on 127.0.0.1 sharing one real redis-server, with real WebSocket clients.</summary>
[Collection(RedisCollection.Name)]
public sealed class TwoNodeRedisTests(RedisFixture redis) : TwoNodeTests
{
    protected override string ConnectionString => redis.ConnectionString;

    protected override bool Sharded => false;

    protected override async Task<IConnectionMultiplexer> ConnectAsync() => await redis.ConnectAsync();
}

/// <summary>The same two-node tests on a local three-master Redis Cluster with sharded pub/sub.</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class TwoNodeRedisClusterTests(RedisClusterFixture cluster) : TwoNodeTests
{
    protected override string ConnectionString => cluster.ConnectionString;

    protected override bool Sharded => true;

    protected override async Task<IConnectionMultiplexer> ConnectAsync() => await cluster.ConnectAsync();
}

/// <summary>Two real Kestrel nodes on 127.0.0.1 sharing one Redis deployment, with real WebSocket clients.</summary>
public abstract class TwoNodeTests
{
    protected abstract string ConnectionString { get; }

    protected abstract bool Sharded { get; }

    protected abstract Task<IConnectionMultiplexer> ConnectAsync();

    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan PresenceTimeout = TimeSpan.FromSeconds(2);

    private static ReadOnlyMemory<byte> Json(string json) => Encoding.UTF8.GetBytes(json);

    [Fact]
    public async Task Publish_on_node_1_reaches_a_user_connected_to_node_2()
    {
        var prefix = RedisFixture.UniquePrefix("aspnet");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        using var alice = await node1.ConnectAsync("alice");
        using var bob = await node2.ConnectAsync("bob");

        var result = await node1.Broadcaster.PublishAsync(["bob"], Json("""{"from":"alice","text":"hi"}"""));

        Assert.Empty(result.OfflineUsers);
        Assert.Equal("""{"from":"alice","text":"hi"}""", await bob.ReceiveTextAsync());

        // Alice did not get Bob's message: the next frame she sees is her own.
        await node2.Broadcaster.PublishAsync(["alice"], Json("""{"from":"bob"}"""));
        Assert.Equal("""{"from":"bob"}""", await alice.ReceiveTextAsync());
    }

    [Fact]
    public async Task A_user_connected_to_both_nodes_gets_the_message_on_both()
    {
        var prefix = RedisFixture.UniquePrefix("aspnet");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        using var carolOn1 = await node1.ConnectAsync("carol");
        using var carolOn2 = await node2.ConnectAsync("carol");
        Assert.Equal(2, await node1.Registry.GetConnectionCountAsync("carol"));

        var result = await node1.Broadcaster.PublishAsync(["carol"], Json("""{"n":1}"""));

        Assert.Equal(2, result.TargetedNodes);
        Assert.Equal("""{"n":1}""", await carolOn1.ReceiveTextAsync());
        Assert.Equal("""{"n":1}""", await carolOn2.ReceiveTextAsync());
    }

    [Fact]
    public async Task Each_new_connection_is_in_presence_and_reachable_from_the_other_node_the_moment_it_opens()
    {
        var prefix = RedisFixture.UniquePrefix("aspnet");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        for (var i = 0; i < 20; i++)
        {
            var user = $"user-{i}";
            using var client = await node2.ConnectAsync(user);

            // No polling, no retry: the presence write finished before the server completed the upgrade.
            Assert.Equal(1, await node1.Registry.GetConnectionCountAsync(user));
            var result = await node1.Broadcaster.PublishAsync([user], Json($$"""{"n":{{i}}}"""));
            Assert.Empty(result.OfflineUsers);
            Assert.Equal($$"""{"n":{{i}}}""", await client.ReceiveTextAsync());
        }
    }

    [Fact]
    public async Task Connections_are_reachable_from_the_other_node_as_soon_as_they_are_open()
    {
        var prefix = RedisFixture.UniquePrefix("aspnet");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        var users = Enumerable.Range(0, 200).Select(i => $"user-{i}").ToArray();
        var clients = await Task.WhenAll(users.Select(u => node2.ConnectAsync(u)));
        try
        {
            // No polling: every connect has returned, so every node must already see and reach these users.
            var result = await node1.Broadcaster.PublishAsync(users, Json("""{"welcome":true}"""));

            Assert.Empty(result.OfflineUsers);
            var received = await Task.WhenAll(clients.Select(c => c.ReceiveTextAsync()));
            Assert.All(received, text => Assert.Equal("""{"welcome":true}""", text));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task Stopping_node_2_gracefully_closes_its_clients_with_1001_and_its_presence_is_gone_at_once()
    {
        var prefix = RedisFixture.UniquePrefix("aspnet");
        await using var node1 = await StartNodeAsync(prefix);
        var node2 = await StartNodeAsync(prefix);
        await using (node2)
        {
            using var alice = await node1.ConnectAsync("alice");
            using var bob = await node2.ConnectAsync("bob");
            using var dave = await node2.ConnectAsync("dave");
            Assert.Equal(1, await node1.Registry.GetConnectionCountAsync("bob"));
            var bobClosed = bob.ReceiveCloseAsync();
            var daveClosed = dave.ReceiveCloseAsync();

            await node2.StopAsync();

            // "At once": checked from node 1 the moment node 2's StopAsync returns, long before any presence timeout.
            var lookup = await node1.Registry.LocateAsync(["alice", "bob", "dave"]);
            Assert.Equal(["bob", "dave"], lookup.OfflineUsers.Order());
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await bobClosed);
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await daveClosed);
            Assert.Equal(1, await node1.Registry.GetConnectionCountAsync("alice"));
        }
    }

    [Fact]
    public async Task Killing_node_2_without_shutdown_lets_its_presence_expire_within_the_timeout()
    {
        var prefix = RedisFixture.UniquePrefix("aspnet");
        await using var node1 = await StartNodeAsync(prefix);
        var node2Redis = await ConnectAsync();
        var node2 = await StartNodeAsync(prefix, node2Redis);
        using var bob = await node2.ConnectAsync("bob");
        Assert.Equal(1, await node1.Registry.GetConnectionCountAsync("bob"));

        // A crash: node 2 loses Redis (no more heartbeats, and no unregister can reach it) and its process goes away
        // without a graceful stop.
        await node2Redis.CloseAsync(allowCommandsToComplete: false);
        node2Redis.Dispose();
        await node2.App.DisposeAsync();

        await Poll.UntilAsync(
            async () => await node1.Registry.GetConnectionCountAsync("bob") == 0,
            $"bob counts as offline once node 2 missed heartbeats for {PresenceTimeout}",
            PresenceTimeout + TimeSpan.FromSeconds(20));
        var result = await node1.Broadcaster.PublishAsync(["bob"], Json("""{"lost":true}"""));
        Assert.Equal(["bob"], result.OfflineUsers);
    }

    private Task<TestNode> StartNodeAsync(string prefix, IConnectionMultiplexer? multiplexer = null)
        => TestNode.StartAsync(
            o => (o.HeartbeatInterval, o.PresenceTimeout) = (HeartbeatInterval, PresenceTimeout),
            b =>
            {
                if (multiplexer is not null)
                {
                    // Registered before AddRedis, so AddRedis uses it instead of making its own.
                    b.Services.AddSingleton(multiplexer);
                }

                b.Services.AddChatScale().AddRedis(o =>
                {
                    o.ConnectionString = ConnectionString;
                    o.KeyPrefix = prefix;
                    o.UseShardedPubSub = Sharded;
                });
            });
}
