using System.Text;
using ChatScale.Groups;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests;

/// <summary>
/// A membership change racing a user's first connection to a node: the node reads the user's groups (one
/// <c>SMEMBERS</c>) while the change is announced. The proxy in front of node 2 lets the read run at once but holds
/// its reply, so the announcement reaches node 2 before the (stale) reply does: the worst order.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class GroupMembershipRaceTests(RedisFixture redis)
{
    private const int ChangeKept = 2705; // GroupLog.ChangeKept
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_leave_racing_the_first_connect_leaves_no_stale_membership_or_group_subscription()
    {
        var prefix = RedisFixture.UniquePrefix("grace");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var node1 = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-1");

        // Bob joins before node 2 starts, so node 2 learns it only from the read below (an announcement still in flight
        // when Bob connects would be kept as well, and the count below would not say which change was kept).
        await Groups(node1).AddToGroupAsync("room", "bob");
        await using var node2 = await TestNode.StartAsync(proxy.ConnectionString, prefix, "node-2");

        // Node 2 reads Bob's groups ("room") ...
        var held = proxy.HoldRepliesAfter(Encoding.UTF8.GetBytes(":gu:bob}:groups"));
        var connecting = node2.ConnectAsync("bob");
        await held.WaitAsync(Timeout);

        // ... Bob is removed, and node 2 hears of it before the reply read before the removal arrives.
        var removal = Groups(node1).RemoveFromGroupAsync("room", "bob").AsTask();
        await Eventually.TrueAsync(() => node2.LogCount(ChangeKept) == 1 || removal.IsCompleted, "node 2 to keep the leave until Bob's groups are loaded");
        if (removal.IsCompleted)
        {
            await removal; // a failed removal says why
        }

        Assert.Equal(1, node2.LogCount(ChangeKept));
        Assert.False(removal.IsCompleted); // not acknowledged before node 2 applied it
        proxy.Release();
        var bob = await connecting.WaitAsync(Timeout);
        Assert.True(await removal.WaitAsync(Timeout));

        // No node subscribes to the group any more: the publish reaches nobody, so it cannot reach Bob.
        var result = await Groups(node1).PublishToGroupAsync("room", "{\"n\":1}"u8.ToArray());
        Assert.Equal(0, result.TargetedNodes);
        Assert.Equal(0, await SubscribersAsync(prefix + ":g:ch:room"));
        await node1.PublishAsync("{\"direct\":true}", "bob");
        await bob.WaitForAsync(1);
        Assert.Equal(["{\"direct\":true}"], bob.Frames);
        Assert.Empty(await Groups(node2).GetGroupsAsync("bob"));
    }

    [Fact]
    public async Task A_join_racing_the_first_connect_reaches_the_new_connection()
    {
        var prefix = RedisFixture.UniquePrefix("grace");
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var node1 = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-1");
        await using var node2 = await TestNode.StartAsync(proxy.ConnectionString, prefix, "node-2");

        // Node 2 reads Bob's groups (none yet) ...
        var held = proxy.HoldRepliesAfter(Encoding.UTF8.GetBytes(":gu:bob}:groups"));
        var connecting = node2.ConnectAsync("bob");
        await held.WaitAsync(Timeout);

        // ... then Bob joins: the join must survive the empty reply.
        var join = Groups(node1).AddToGroupAsync("room", "bob").AsTask();
        await Eventually.TrueAsync(() => node2.LogCount(ChangeKept) == 1 || join.IsCompleted, "node 2 to keep the join until Bob's groups are loaded");
        if (join.IsCompleted)
        {
            await join; // a failed join says why
        }

        Assert.Equal(1, node2.LogCount(ChangeKept));
        proxy.Release();
        var bob = await connecting.WaitAsync(Timeout);
        Assert.True(await join.WaitAsync(Timeout));

        var result = await Groups(node1).PublishToGroupAsync("room", "{\"n\":1}"u8.ToArray());
        Assert.Equal(1, result.TargetedNodes);
        await bob.WaitForAsync(1);
        Assert.Equal(["{\"n\":1}"], bob.Frames);
    }

    private static IGroupManager Groups(TestNode node) => node.Services.GetRequiredService<IGroupManager>();

    private async Task<long> SubscribersAsync(string channel)
    {
        await using var observer = await redis.ConnectAsync();
        var reply = (RedisResult[])(await observer.GetDatabase().ExecuteAsync("PUBSUB", "NUMSUB", channel))!;
        return (long)reply[1];
    }
}
