using System.Net.WebSockets;
using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using ChatScale.Groups;
using ChatScale.Testing;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace ChatScale.AspNetCore.Tests;

/// <summary>Groups across two real Kestrel nodes sharing one real redis-server, with real WebSocket clients.</summary>
[Collection(RedisCollection.Name)]
public sealed class TwoNodeGroupRedisTests(RedisFixture redis) : TwoNodeGroupTests
{
    protected override string ConnectionString => redis.ConnectionString;

    protected override bool Sharded => false;

    protected override async Task<IConnectionMultiplexer> ConnectAsync() => await redis.ConnectAsync(allowAdmin: true);
}

/// <summary>The same group tests on a local three-master Redis Cluster with sharded pub/sub (keys spread, no CROSSSLOT).</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class TwoNodeGroupRedisClusterTests(RedisClusterFixture cluster) : TwoNodeGroupTests
{
    protected override string ConnectionString => cluster.ConnectionString;

    protected override bool Sharded => true;

    protected override async Task<IConnectionMultiplexer> ConnectAsync() => await cluster.ConnectAsync(allowAdmin: true);
}

/// <summary>Group membership and publishing across two nodes.</summary>
public abstract class TwoNodeGroupTests
{
    protected abstract string ConnectionString { get; }

    protected abstract bool Sharded { get; }

    protected abstract Task<IConnectionMultiplexer> ConnectAsync();

    private static ReadOnlyMemory<byte> Json(string json) => Encoding.UTF8.GetBytes(json);

    [Fact]
    public async Task A_user_added_while_connected_on_node_2_receives_the_next_group_message()
    {
        var prefix = RedisFixture.UniquePrefix("groups");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        using var bob = await node2.ConnectAsync("bob");

        Assert.True(await Groups(node1).AddToGroupAsync("lobby", "bob"));
        var result = await Groups(node1).PublishToGroupAsync("lobby", Json("""{"n":1}"""));

        Assert.Equal(1, result.TargetedNodes);
        Assert.Equal("""{"n":1}""", await bob.ReceiveTextAsync());
        Assert.Equal(["lobby"], await Groups(node2).GetGroupsAsync("bob"));
        Assert.Equal(1, await Groups(node2).CountMembersAsync("lobby"));
    }

    [Fact]
    public async Task Removal_stops_delivery_to_open_connections_at_once()
    {
        var prefix = RedisFixture.UniquePrefix("groups");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        await Groups(node1).AddToGroupAsync("lobby", "bob");
        using var bob = await node2.ConnectAsync("bob");
        await Groups(node1).PublishToGroupAsync("lobby", Json("""{"n":1}"""));
        Assert.Equal("""{"n":1}""", await bob.ReceiveTextAsync());

        Assert.True(await Groups(node1).RemoveFromGroupAsync("lobby", "bob"));
        var result = await Groups(node1).PublishToGroupAsync("lobby", Json("""{"n":2}"""));
        await node1.Broadcaster.PublishAsync(["bob"], Json("""{"direct":true}"""));

        // The next frame Bob sees is the direct one: the group message after his removal never reached him.
        Assert.Equal("""{"direct":true}""", await bob.ReceiveTextAsync());
        Assert.Equal(0, result.TargetedNodes);
        Assert.Empty(await Groups(node2).GetGroupsAsync("bob"));
    }

    [Fact]
    public async Task A_reconnect_to_the_other_node_keeps_membership_and_the_excluded_user_is_skipped()
    {
        var prefix = RedisFixture.UniquePrefix("groups");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        using var alice = await node1.ConnectAsync("alice");
        var bob = await node2.ConnectAsync("bob");
        await Groups(node2).AddToGroupAsync("lobby", "bob");
        await Groups(node2).AddToGroupAsync("lobby", "alice");

        await bob.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "moving", CancellationToken.None);
        bob.Dispose();
        await Poll.UntilAsync(async () => await node1.Registry.GetConnectionCountAsync("bob") == 0, "Bob's first connection unregisters");
        using var bobAgain = await node1.ConnectAsync("bob");

        var result = await Groups(node2).PublishToGroupAsync("lobby", Json("""{"from":"alice"}"""), exceptUserId: "alice");
        await node2.Broadcaster.PublishAsync(["alice"], Json("""{"direct":true}"""));

        Assert.Equal(1, result.TargetedNodes); // Only node 1 hosts members now.
        Assert.Equal("""{"from":"alice"}""", await bobAgain.ReceiveTextAsync());
        Assert.Equal("""{"direct":true}""", await alice.ReceiveTextAsync());
    }

    [Fact]
    public async Task Online_members_are_counted_across_both_nodes_once_each_and_the_count_follows_disconnects()
    {
        var prefix = RedisFixture.UniquePrefix("groups");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        foreach (var user in new[] { "alice", "bob", "carol", "dave", "erin" })
        {
            await Groups(node1).AddToGroupAsync("team", user);
        }

        using var alice = await node1.ConnectAsync("alice");
        var bob = await node2.ConnectAsync("bob");
        using var carolOnNode1 = await node1.ConnectAsync("carol");
        using var carolOnNode2 = await node2.ConnectAsync("carol");
        using var mallory = await node2.ConnectAsync("mallory"); // online, not a member

        Assert.Equal(5, await Groups(node2).CountMembersAsync("team"));
        Assert.Equal(3, await Groups(node2).CountOnlineMembersAsync("team"));
        Assert.Equal(0, await Groups(node1).CountOnlineMembersAsync("nobody-here"));

        await bob.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        bob.Dispose();
        await Poll.UntilAsync(async () => await node1.Registry.GetConnectionCountAsync("bob") == 0, "Bob's connection unregisters");

        Assert.Equal(2, await Groups(node1).CountOnlineMembersAsync("team"));
    }

    [Fact]
    public async Task A_connection_added_on_its_own_receives_the_group_until_it_closes_and_its_node_then_unsubscribes()
    {
        var prefix = RedisFixture.UniquePrefix("groups");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        using var dave = await node1.ConnectAsync("dave");
        var conversationTab = await node2.ConnectAsync("carol");
        var tabId = Assert.Single(node2.Connections.GetConnections("carol")).ConnectionId;
        using var otherTab = await node2.ConnectAsync("carol");
        await Groups(node1).AddToGroupAsync("conversation", "dave");

        Assert.False(await Groups(node1).AddConnectionToGroupAsync("conversation", tabId)); // held by node 2
        Assert.True(await Groups(node2).AddConnectionToGroupAsync("conversation", tabId));
        var result = await Groups(node1).PublishToGroupAsync("conversation", Json("""{"n":1}"""));
        await node1.Broadcaster.PublishAsync(["carol"], Json("""{"direct":1}"""));

        // A group's channel and the node's channel are two subscriptions, each handled in order on its own: the group
        // message and the direct one may arrive either way round.
        Assert.Equal(2, result.TargetedNodes);
        Assert.Equal(["""{"direct":1}""", """{"n":1}"""], await ReceiveSortedAsync(conversationTab, 2));
        Assert.Equal("""{"direct":1}""", await otherTab.ReceiveTextAsync()); // Carol's other tab is not in the group
        Assert.Equal(1, await Groups(node2).CountMembersAsync("conversation"));

        // Carol joins as a user too: each of her connections gets the next message once.
        await Groups(node1).AddToGroupAsync("conversation", "carol");
        await Groups(node1).PublishToGroupAsync("conversation", Json("""{"n":2}"""));
        await node1.Broadcaster.PublishAsync(["carol"], Json("""{"direct":2}"""));
        Assert.Equal(["""{"direct":2}""", """{"n":2}"""], await ReceiveSortedAsync(conversationTab, 2));
        Assert.Equal(["""{"direct":2}""", """{"n":2}"""], await ReceiveSortedAsync(otherTab, 2));
        await Groups(node1).RemoveFromGroupAsync("conversation", "carol");

        // The tab closes: node 2 no longer hosts anyone in the group and stops claiming its messages.
        await conversationTab.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "page closed", CancellationToken.None);
        conversationTab.Dispose();
        await Poll.UntilAsync(
            async () => (await Groups(node1).PublishToGroupAsync("conversation", Json("""{"probe":true}"""))).TargetedNodes == 1,
            "node 2 unsubscribes from the group");
        await node1.Broadcaster.PublishAsync(["carol"], Json("""{"direct":3}"""));
        Assert.Equal("""{"direct":3}""", await otherTab.ReceiveTextAsync());
    }

    [Fact]
    public async Task A_10000_member_group_reaches_every_online_member_on_both_nodes_once_with_one_publish_per_message()
    {
        const int Members = 10_000;
        const int WebSocketsPerNode = 10;
        const int Messages = 10;
        var prefix = RedisFixture.UniquePrefix("groups");
        await using var node1 = await StartNodeAsync(prefix);
        await using var node2 = await StartNodeAsync(prefix);
        var users = Enumerable.Range(0, Members).Select(i => $"member-{i}").ToArray();

        // Members are added while offline (no node to acknowledge), then every one of them comes online: the first 20
        // over real WebSockets, the other 9,980 as in-process connections registered in each node's real registry
        // (the same path the endpoint takes, without 10,000 sockets on a 2-core CI machine). Half are on each node.
        using var watcherOn1 = await node1.ConnectAsync("watcher");
        using var watcherOn2 = await node2.ConnectAsync("watcher");
        foreach (var chunk in users.Chunk(500))
        {
            await Task.WhenAll(chunk.Select(u => Groups(node1).AddToGroupAsync("big", u).AsTask()));
        }

        // Each node handles announced changes in order and acknowledges those of users it hosts: once both have
        // acknowledged this one, neither has any of the 10,000 joins left to handle (nor an acknowledgement to send
        // while PUBLISH is being counted below).
        await Groups(node1).AddToGroupAsync("watch", "watcher");
        Assert.Equal(Members, await Groups(node2).CountMembersAsync("big"));
        var sockets = new List<ClientWebSocket>();
        var transports = new CountingTransport[Members];
        try
        {
            for (var i = 0; i < WebSocketsPerNode * 2; i++)
            {
                sockets.Add(await (i % 2 == 0 ? node1 : node2).ConnectAsync(users[i]));
            }

            foreach (var chunk in Enumerable.Range(WebSocketsPerNode * 2, Members - (WebSocketsPerNode * 2)).Chunk(500))
            {
                await Task.WhenAll(chunk.Select(async i =>
                {
                    var node = i % 2 == 0 ? node1 : node2;
                    transports[i] = new CountingTransport();
                    var connection = node.Connections.Add(users[i], transports[i]);
                    await node.Registry.RegisterAsync(new ConnectionRegistration(connection.ConnectionId, users[i], node.NodeId));
                }));
            }

            Assert.Equal(Members, await Groups(node1).CountOnlineMembersAsync("big"));
            using var observer = await ConnectAsync();
            var envelopes = new List<int>();
            var channel = Sharded ? RedisChannel.Sharded(prefix + ":g:ch:big") : RedisChannel.Literal(prefix + ":g:ch:big");
            var queue = await observer.GetSubscriber().SubscribeAsync(channel);
            queue.OnMessage(m =>
            {
                lock (envelopes)
                {
                    envelopes.Add(((byte[])m.Message!).Length);
                }
            });

            var servers = observer.GetServers().Where(s => !s.IsReplica).ToArray();
            var before = await CommandStats.SnapshotAsync(servers);
            var payload = Json("""{"text":"hello everyone","padding":"0123456789012345678901234567890123456789"}""");
            for (var n = 0; n < Messages; n++)
            {
                var result = await Groups(n % 2 == 0 ? node1 : node2).PublishToGroupAsync("big", payload);
                Assert.Equal(3, result.TargetedNodes); // both nodes and the observer
            }

            var after = await CommandStats.SnapshotAsync(servers);
            var delta = CommandStats.Delta(before, after);
            var publishes = delta.GetValueOrDefault("publish") + delta.GetValueOrDefault("spublish");
            Assert.True(publishes <= 2 * Messages, $"{publishes} PUBLISH/SPUBLISH for {Messages} messages: {CommandStats.Format(delta)}");

            // Each member gets each message exactly once: a last group message marks the end of each connection's
            // FIFO queue, and nothing but the ten payloads came before it.
            var end = Json("""{"end":true}""");
            await Groups(node1).PublishToGroupAsync("big", end);
            foreach (var client in sockets)
            {
                for (var n = 0; n < Messages; n++)
                {
                    Assert.Equal(Encoding.UTF8.GetString(payload.Span), await client.ReceiveTextAsync());
                }

                Assert.Equal("""{"end":true}""", await client.ReceiveTextAsync());
            }

            await Poll.UntilAsync(() => transports.All(t => t is null || t.Frames(end.Span) == 1), "every in-process member received the end marker");
            for (var i = WebSocketsPerNode * 2; i < Members; i++)
            {
                Assert.True(transports[i].Frames(payload.Span) == Messages && transports[i].Total == Messages + 1, $"{users[i]} received {transports[i].Frames(payload.Span)} of {Messages} messages ({transports[i].Total} frames in all)");
            }

            await Poll.UntilAsync(
                () =>
                {
                    lock (envelopes)
                    {
                        return envelopes.Count == Messages + 1;
                    }
                },
                "the observer saw every envelope");

            // The envelope carries the payload, the group id and the origin node: no member list.
            var header = 3 + 1 + node1.NodeId.Length + 16 + 1 + 1 + "big".Length + 5;
            lock (envelopes)
            {
                Assert.All(envelopes.Take(Messages), length => Assert.True(length <= payload.Length + header, $"envelope of {length} bytes for a {payload.Length}-byte payload"));
            }
        }
        finally
        {
            foreach (var client in sockets)
            {
                client.Dispose();
            }
        }
    }

    private static IGroupManager Groups(TestNode node) => node.Services.GetRequiredService<IGroupManager>();

    private Task<TestNode> StartNodeAsync(string prefix)
        => TestNode.StartAsync(
            o => (o.HeartbeatInterval, o.PresenceTimeout) = (TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(2)),
            b => b.Services.AddChatScale().AddRedis(o =>
            {
                o.ConnectionString = ConnectionString;
                o.KeyPrefix = prefix;
                o.UseShardedPubSub = Sharded;
            }));

    private static async Task<string[]> ReceiveSortedAsync(ClientWebSocket socket, int count)
    {
        var texts = new string[count];
        for (var i = 0; i < count; i++)
        {
            texts[i] = await socket.ReceiveTextAsync();
        }

        Array.Sort(texts, StringComparer.Ordinal);
        return texts;
    }
}
