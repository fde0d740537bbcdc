using System.Diagnostics;
using System.Text;
using ChatScale.Redis.Tests.Infrastructure;

namespace ChatScale.Redis.Tests;

/// <summary>
/// A publish waits for its pipelined commands (the lookup's reads, then one PUBLISH per node) with one resumption,
/// yet keeps every outcome: a caller that cancels stops waiting at once while the commands still finish, a reply that
/// times out surfaces as <see cref="BackplaneUnavailableException"/>, and when the replies come every node is reached.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class PipelinedWaitTests(RedisFixture redis)
{
    private static readonly byte[] PublishCommand = "PUBLISH"u8.ToArray();

    [Fact]
    public async Task PublishToTwoNodes_CancelledWhileThePublishRepliesAreHeld_StopsWaitingAtOnce_AndBothNodesStillReceive()
    {
        var prefix = RedisFixture.UniquePrefix("wait-cancel");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await TestNode.StartAsync(proxy.ConnectionString + ",asyncTimeout=20000", prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        await using var c = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-c");
        var bob = await b.ConnectAsync("bob");
        var carol = await c.ConnectAsync("carol");

        // The lookup is answered; the two PUBLISHes reach Redis (and run), their replies are held.
        var held = proxy.HoldRepliesAfter(PublishCommand);
        using var cancel = new CancellationTokenSource();
        var publish = a.Broadcaster.PublishAsync(["bob", "carol"], Encoding.UTF8.GetBytes("hi"), cancel.Token).AsTask();
        await held;
        var cancelledAt = Stopwatch.GetTimestamp();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => publish);
        Assert.True(Stopwatch.GetElapsedTime(cancelledAt) < TimeSpan.FromSeconds(10), "the publish waited for its held replies instead of stopping");
        await bob.WaitForAsync(1);
        await carol.WaitForAsync(1);

        // Once the replies come, the connection serves the next publish to both nodes.
        proxy.Release();
        var next = await a.Broadcaster.PublishAsync(["bob", "carol"], Encoding.UTF8.GetBytes("again"));
        Assert.Equal(2, next.TargetedNodes);
        Assert.Empty(next.OfflineUsers);
        await bob.WaitForAsync(2);
        await carol.WaitForAsync(2);
    }

    [Fact]
    public async Task PublishToTwoNodes_WhoseRepliesTimeOut_ThrowsBackplaneUnavailable_SayingItMayHaveRun()
    {
        var prefix = RedisFixture.UniquePrefix("wait-timeout");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await TestNode.StartAsync(proxy.ConnectionString + ",asyncTimeout=500", prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        await using var c = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-c");
        var bob = await b.ConnectAsync("bob");
        var carol = await c.ConnectAsync("carol");

        var held = proxy.HoldRepliesAfter(PublishCommand);
        var publish = a.Broadcaster.PublishAsync(["bob", "carol"], Encoding.UTF8.GetBytes("hi")).AsTask();
        await held;

        var failure = await Assert.ThrowsAsync<BackplaneUnavailableException>(() => publish);
        Assert.Contains("may or may not have run", failure.Message, StringComparison.Ordinal);
        Assert.True(failure.MayHaveSucceeded, "a timeout after the command was sent says the publish may have happened");
        await bob.WaitForAsync(1);   // it did run
        await carol.WaitForAsync(1);
        proxy.Release();
    }

    [Fact]
    public async Task Lookup_CancelledWhileItsRepliesAreHeld_StopsWaitingAtOnce()
    {
        var prefix = RedisFixture.UniquePrefix("wait-lookup");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await TestNode.StartAsync(proxy.ConnectionString + ",asyncTimeout=20000", prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        await b.ConnectAsync("bob");
        await b.ConnectAsync("carol");
        await b.ConnectAsync("dave");

        proxy.StallReplies();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var started = Stopwatch.GetTimestamp();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a.Registry.LocateAsync(["bob", "carol", "dave"], cancel.Token).AsTask());
        Assert.True(Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(10), "the lookup waited for its held replies instead of stopping");

        proxy.Release();
        var lookup = await a.Registry.LocateAsync(["bob", "carol", "dave"]);
        Assert.Equal(["bob", "carol", "dave"], lookup.UsersByNode["node-b"]);
    }
}
