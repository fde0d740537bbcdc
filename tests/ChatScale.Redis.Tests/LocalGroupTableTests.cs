using ChatScale.Connections;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests;

/// <summary>The node's group bookkeeping on its own (no Redis): what a change racing a user's first load does.</summary>
public sealed class LocalGroupTableTests
{
    [Fact]
    public void Changes_announced_while_the_users_groups_load_are_applied_after_the_read_in_order_and_returned_for_acknowledgement()
    {
        using var connections = new LocalConnections(Options.Create(new ChatScaleOptions { NodeId = "node-1" }));
        var table = new LocalGroupTable(connections);
        var bob = connections.Add("bob", new FakeTransport());
        table.ConnectionOpening(bob.ConnectionId, "bob");
        var user = table.BeginLoad(bob.ConnectionId, "bob", out _);
        Assert.NotNull(user);
        Assert.Null(table.BeginLoad(bob.ConnectionId, "bob", out var loading)); // a second registration waits for the same load
        Assert.NotNull(loading);

        var leave = new GroupChange(Joined: false, Guid.NewGuid(), "node-2", "room", "bob");
        var join = new GroupChange(Joined: true, Guid.NewGuid(), "node-2", "news", "bob");
        Assert.Equal(LocalGroupTable.ChangeOutcome.Kept, table.Apply(leave));
        Assert.Equal(LocalGroupTable.ChangeOutcome.Kept, table.Apply(join));
        Assert.Equal(LocalGroupTable.ChangeOutcome.NotHosted, table.Apply(join with { UserId = "carol" }));

        // The read ran before the leave: it still lists "room".
        var (changed, kept) = table.CompleteLoad("bob", user, [(RedisValue)"room"]);

        Assert.Equal([leave, join], kept);
        Assert.Contains("news", changed);
        Assert.Empty(table.Recipients("room")?.Users ?? []);
        Assert.Equal(["bob"], table.Recipients("news")!.Users);
        Assert.Equal(LocalGroupTable.ChangeOutcome.Unchanged, table.Apply(join)); // applied at once from now on
        Assert.Equal(["news"], table.ConnectionClosed(bob.ConnectionId));
        Assert.Empty(table.Recipients("news")?.Users ?? []);
    }
}
