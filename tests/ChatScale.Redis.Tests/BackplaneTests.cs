using ChatScale.Backplane;
using ChatScale.Redis.Tests.Infrastructure;

namespace ChatScale.Redis.Tests;

/// <summary>Several nodes in one process, each with its own node id, Redis connection, listener and connections.</summary>
[Collection(RedisCollection.Name)]
public sealed class BackplaneTests(RedisFixture redis)
{
    [Fact]
    public async Task Targeted_MessageToUserOnNodeB_ArrivesOnNodeBOnly()
    {
        var prefix = RedisFixture.UniquePrefix("targeted");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        await using var c = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-c");
        var aliceOnA = await a.ConnectAsync("alice");
        var bobOnB = await b.ConnectAsync("bob");
        var carolOnC = await c.ConnectAsync("carol");

        var result = await a.PublishAsync("hello bob", "bob");

        Assert.Equal(1, result.TargetedNodes);
        Assert.Empty(result.OfflineUsers);
        await bobOnB.WaitForAsync(1);
        Assert.Equal(["hello bob"], bobOnB.Frames);

        // Markers published after the message on A's and C's own channels: once they are in, anything the first message
        // had sent to A or C would have been received before them (one publisher connection, one channel, in order).
        await a.PublishAsync("marker", "alice", "carol");
        await aliceOnA.WaitForAsync(1);
        await carolOnC.WaitForAsync(1);
        Assert.Equal(["marker"], aliceOnA.Frames);
        Assert.Equal(["marker"], carolOnC.Frames);
        Assert.Equal(1, a.ReceivedCount);
        Assert.Equal(1, b.ReceivedCount);
        Assert.Equal(1, c.ReceivedCount);
    }

    [Fact]
    public async Task Targeted_OneEnvelopePerHostingNode_CarriesOnlyThatNodesRecipients()
    {
        var prefix = RedisFixture.UniquePrefix("pernode");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var ann = await a.ConnectAsync("ann");
        var bob = await b.ConnectAsync("bob");
        var bob2 = await b.ConnectAsync("bob");
        var cid = await b.ConnectAsync("cid");

        var result = await a.PublishAsync("hi", "ann", "bob", "cid");

        Assert.Equal(2, result.TargetedNodes);
        await Task.WhenAll(ann.WaitForAsync(1), bob.WaitForAsync(1), bob2.WaitForAsync(1), cid.WaitForAsync(1));
        Assert.Equal(1, a.ReceivedCount);
        Assert.Equal(1, b.ReceivedCount);
    }

    [Fact]
    public async Task Targeted_OfflineUsers_AreReportedAndNothingIsPublishedForThem()
    {
        var prefix = RedisFixture.UniquePrefix("offline");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var bob = await b.ConnectAsync("bob");

        var result = await a.PublishAsync("hi", "ghost", "bob", "nobody");

        Assert.Equal(["ghost", "nobody"], result.OfflineUsers);
        Assert.Equal(1, result.TargetedNodes);
        await bob.WaitForAsync(1);

        var allOffline = await a.PublishAsync("hi", "ghost");
        Assert.Equal(0, allOffline.TargetedNodes);
        Assert.Equal(["ghost"], allOffline.OfflineUsers);
    }

    [Fact]
    public async Task Broadcast_MessageReachesEveryNode_AndEachDeliversToTheRecipientsItHosts()
    {
        var prefix = RedisFixture.UniquePrefix("broadcast");
        Action<ChatScaleRedisOptions> broadcast = o => o.RoutingMode = RedisRoutingMode.Broadcast;
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a", broadcast);
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b", broadcast);
        await using var c = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-c", broadcast);
        var alice = await a.ConnectAsync("alice");
        var bob = await b.ConnectAsync("bob");
        var carol = await c.ConnectAsync("carol");

        var result = await a.PublishAsync("to bob", "bob", "ghost");

        Assert.Equal(1, result.TargetedNodes);
        Assert.Empty(result.OfflineUsers); // broadcast mode does no presence lookup
        await bob.WaitForAsync(1);
        await Eventually.TrueAsync(() => a.ReceivedCount == 1 && b.ReceivedCount == 1 && c.ReceivedCount == 1, "every node to receive the envelope");
        Assert.Equal(0, alice.Count);
        Assert.Equal(0, carol.Count);
    }

    [Fact]
    public async Task PublishToAll_ReachesEveryConnectionOnEveryNode()
    {
        var prefix = RedisFixture.UniquePrefix("all");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var alice = await a.ConnectAsync("alice");
        var bob = await b.ConnectAsync("bob");

        await a.Broadcaster.PublishToAllAsync("announcement"u8.ToArray());

        await Task.WhenAll(alice.WaitForAsync(1), bob.WaitForAsync(1));
        Assert.Equal(["announcement"], bob.Frames);
    }

    [Fact]
    public async Task SequentialPublishes_ArriveInOrder_OnEveryNode()
    {
        var prefix = RedisFixture.UniquePrefix("order");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var ann = await a.ConnectAsync("ann");
        var bob = await b.ConnectAsync("bob");
        const int Count = 300;

        for (var i = 0; i < Count; i++)
        {
            await a.PublishAsync($"m{i}", "ann", "bob");
        }

        await Task.WhenAll(ann.WaitForAsync(Count), bob.WaitForAsync(Count));
        var expected = Enumerable.Range(0, Count).Select(i => $"m{i}").ToArray();
        Assert.Equal(expected, ann.Frames);
        Assert.Equal(expected, bob.Frames);
    }

    [Fact]
    public async Task KeyPrefix_IsolatesDeploymentsSharingOneRedis()
    {
        var server = redis.ConnectionString;
        await using var app1 = await TestNode.StartAsync(server, RedisFixture.UniquePrefix("app1"), "node-1");
        await using var app2 = await TestNode.StartAsync(server, RedisFixture.UniquePrefix("app2"), "node-1");
        var bobInApp1 = await app1.ConnectAsync("bob");
        var bobInApp2 = await app2.ConnectAsync("bob");

        // Same node id, same user, same Redis: each deployment sees only its own presence and channels.
        await app1.PublishAsync("from app1", "bob");
        await app1.Broadcaster.PublishToAllAsync("all app1"u8.ToArray());
        await app2.PublishAsync("from app2", "bob");

        await bobInApp1.WaitForAsync(2);
        await bobInApp2.WaitForAsync(1);
        Assert.Equal(["all app1", "from app1"], bobInApp1.Frames.Order(StringComparer.Ordinal)); // two channels: no order between them
        Assert.Equal(["from app2"], bobInApp2.Frames);

        await using var app3 = await TestNode.StartAsync(server, RedisFixture.UniquePrefix("app3"), "node-1");
        Assert.Equal(0, await app3.Registry.GetConnectionCountAsync("bob"));
        Assert.Equal(["bob"], (await app3.PublishAsync("x", "bob")).OfflineUsers);
    }

    [Fact]
    public async Task PipelinedEnvelopes_ArriveInOrder_WithMalformedOnesDroppedInBetween()
    {
        // Thousands of envelopes sent without waiting, on one connection, so the listener finds many queued at each
        // wake-up; a malformed one among them is dropped alone. The send queues hold the whole burst (the default
        // capacity would, rightly, drop the oldest frames of a burst this size).
        var prefix = RedisFixture.UniquePrefix("batches");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b", core: o => o.SendQueueCapacity = 4096);
        var bob = await b.ConnectAsync("bob");
        var carol = await b.ConnectAsync("carol");
        var bobChannel = StackExchange.Redis.RedisChannel.Literal($"{prefix}:bp:node:node-b");
        var subscriber = b.Multiplexer.GetSubscriber();
        const int Count = 3000;
        var sends = new List<Task>(Count + (Count / 100));
        for (var i = 0; i < Count; i++)
        {
            if (i % 100 == 50)
            {
                sends.Add(subscriber.PublishAsync(bobChannel, "not an envelope"u8.ToArray()));
            }

            string[] recipients = i % 2 == 0 ? ["bob", "carol"] : ["bob"];
            sends.Add(subscriber.PublishAsync(bobChannel, EnvelopeCodec.Encode(EnvelopeKind.Users, "node-a", Guid.NewGuid(), recipients, System.Text.Encoding.UTF8.GetBytes($"m{i}"))));
        }

        await Task.WhenAll(sends);
        await Task.WhenAll(bob.WaitForAsync(Count), carol.WaitForAsync(Count / 2));
        Assert.Equal(Enumerable.Range(0, Count).Select(i => $"m{i}"), bob.Frames);
        Assert.Equal(Enumerable.Range(0, Count).Where(i => i % 2 == 0).Select(i => $"m{i}"), carol.Frames);
        Assert.Equal(Count, b.ReceivedCount);
        Assert.Equal(Count / 100, b.MalformedCount);
    }

    [Fact]
    public async Task MalformedEnvelope_IsCountedAndDropped_AndLaterMessagesStillArrive()
    {
        var prefix = RedisFixture.UniquePrefix("malformed");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var bob = await b.ConnectAsync("bob");
        var bobChannel = StackExchange.Redis.RedisChannel.Literal($"{prefix}:bp:node:node-b");
        var allChannel = StackExchange.Redis.RedisChannel.Literal($"{prefix}:bp:all");

        var subscriber = a.Multiplexer.GetSubscriber();
        Assert.Equal(1, await subscriber.PublishAsync(bobChannel, "not an envelope"u8.ToArray()));
        await subscriber.PublishAsync(bobChannel, new byte[] { 0xC5, 0x01, 0x01, 0x05 }); // truncated
        await subscriber.PublishAsync(allChannel, new byte[] { 0xC5, 0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }); // unknown version
        await subscriber.PublishAsync(bobChannel, Array.Empty<byte>());
        await a.PublishAsync("still alive", "bob");

        await bob.WaitForAsync(1);
        Assert.Equal(["still alive"], bob.Frames);
        Assert.Equal(4, b.MalformedCount);
        Assert.Equal(1, a.MalformedCount); // the all-nodes one reached A too
        Assert.Equal(1, b.ReceivedCount);
        Assert.Equal(4, b.LogCount(2003)); // each logged as a warning, none fatal
    }

    [Fact]
    public async Task GroupEnvelopeOnANodeChannel_IsCountedMalformed_AndNeverReachesAUserNamedLikeTheGroup()
    {
        var prefix = RedisFixture.UniquePrefix("group-on-node");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var bob = await b.ConnectAsync("bob");
        var bobChannel = StackExchange.Redis.RedisChannel.Literal($"{prefix}:bp:node:node-b");

        // Well formed, but a group envelope for group "bob": only group channels may carry that kind.
        var forged = ChatScale.Backplane.EnvelopeCodec.Encode(ChatScale.Backplane.EnvelopeKind.Group, "node-a", Guid.NewGuid(), ["bob"], "forged"u8);
        Assert.Equal(1, await a.Multiplexer.GetSubscriber().PublishAsync(bobChannel, forged));
        await a.PublishAsync("real", "bob");

        await bob.WaitForAsync(1);
        Assert.Equal(["real"], bob.Frames);
        Assert.Equal(1, b.MalformedCount);
        Assert.Equal(1, b.LogCount(2003));
    }

    [Fact]
    public async Task SubscriptionQueueCompleted_ListenerSubscribesAgain_Closes1012_AndLaterMessagesArrive()
    {
        var prefix = RedisFixture.UniquePrefix("requeue");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var bob = await b.ConnectAsync("bob");

        // Completes the listener's ChannelMessageQueues, as a stray UnsubscribeAll on the shared connection would.
        await b.Multiplexer.GetSubscriber().UnsubscribeAllAsync();
        await Eventually.TrueAsync(() => b.LogCount(2005) == 2, "both queues to be noticed as completed");
        await Eventually.TrueAsync(() => b.LogCount(2001) == 4, "both channels to be subscribed again");

        // Frames published while unsubscribed were lost: the connection is told so (1012) and reconnects.
        await Eventually.TrueAsync(() => bob.ClosedWith == ChatScale.Connections.ConnectionCloseStatus.ServiceRestart, "bob to be closed with 1012");
        var bobAgain = await b.ConnectAsync("bob");
        await a.PublishAsync("after", "bob");
        await a.Broadcaster.PublishToAllAsync("after-all"u8.ToArray());
        await bobAgain.WaitForAsync(2);
        Assert.Equal(["after", "after-all"], bobAgain.Frames.Order(StringComparer.Ordinal));
    }
}
