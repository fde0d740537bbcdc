using System.Text;
using ChatScale.Reliability.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.BadInput;

/// <summary>
/// User ids come from the auth principal, and an identity provider may hand out anything. They become Redis keys
/// and ride in envelopes: each must connect, be found by presence and receive across two nodes, and never collide
/// with another id. (Redis-level escaping is covered by ChatScale.Redis.Tests; this is end to end.)
/// </summary>
[Collection(SharedRedis.Name)]
public sealed class HostileUserIdTests(RedisFixture redis, ITestOutputHelper output)
{
    public static TheoryData<string, string> Ids => new()
    {
        { "newlines", "eve\r\nX-Injected: 1\n*2\r\n$3\r\nDEL" },
        { "1,000 ASCII chars", new string('a', 1000) },
        { "emoji and ZWJ sequences", "👩‍👩‍👧‍👦😀🏳️‍🌈" },
        { "250 emoji (1,000 UTF-8 bytes)", string.Concat(Enumerable.Repeat("😀", 250)) },
        { "Redis glob and hash-tag characters", "{alice}:presence:user:*?[a-z]\\" },
        { "NUL and control characters", "nul\0bell\u0007esc\u001b" },
        { "bidi override and combining marks", "\u202Eevil\u202C a\u0301\u0301\u0301" },
        { "lookalike of another user", "alice " },
    };

    [Theory]
    [MemberData(nameof(Ids))]
    public async Task A_hostile_user_id_connects_is_located_and_receives_across_two_nodes_without_colliding_with_alice(string what, string userId)
    {
        var prefix = RedisFixture.UniquePrefix("hostile");
        await using var node1 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => o.NodeId = "hostile-n1");
        await using var node2 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => o.NodeId = "hostile-n2");
        using var hostile = await node1.ConnectAsync(userId);
        using var alice = await node2.ConnectAsync("alice");
        await Eventually.TrueAsync(async () => (await node2.Registry.LocateAsync([userId])).UsersByNode.ContainsKey("hostile-n1"), $"{what} located on node 1");

        // node 2 -> the hostile id on node 1, and the hostile id's presence does not leak onto alice or vice versa.
        var toHostile = await node2.Broadcaster.PublishAsync([userId], "{\"to\":\"hostile\"}"u8.ToArray());
        Assert.Empty(toHostile.OfflineUsers);
        Assert.Equal("{\"to\":\"hostile\"}", await hostile.ReceiveTextAsync());
        var toAlice = await node1.Broadcaster.PublishAsync(["alice"], "{\"to\":\"alice\"}"u8.ToArray());
        Assert.Equal("{\"to\":\"alice\"}", await alice.ReceiveTextAsync());
        Assert.Equal(1, await node2.Registry.GetConnectionCountAsync(userId));
        Assert.Equal(1, await node2.Registry.GetConnectionCountAsync("alice"));

        // The next frame each receives is its own: nothing meant for one reached the other.
        await node2.Broadcaster.PublishAsync([userId], "{\"marker\":1}"u8.ToArray());
        await node1.Broadcaster.PublishAsync(["alice"], "{\"marker\":2}"u8.ToArray());
        Assert.Equal("{\"marker\":1}", await hostile.ReceiveTextAsync());
        Assert.Equal("{\"marker\":2}", await alice.ReceiveTextAsync());

        await hostile.CloseQuietlyAsync();
        await Eventually.TrueAsync(async () => await node2.Registry.GetConnectionCountAsync(userId) == 0, $"{what} offline after closing");
        output.WriteLine($"{what}: {Encoding.UTF8.GetByteCount(userId)} UTF-8 bytes, delivered both ways, offline after close");
        await alice.CloseQuietlyAsync();
    }

    /// <summary>
    /// LIBRARY BUG (fails until src/ is fixed): the endpoint accepts, and presence registers, a user id longer than the
    /// envelope's 1,024-byte recipient limit, but then RedisMessageBroadcaster.PublishAsync throws ArgumentException
    /// from EnvelopeCodec.Encode for any batch that contains it, so one such user in a conversation stops delivery to
    /// everyone in it (the dispatcher retries, then dead-letters the job). Either refuse such an id at the endpoint or
    /// never let it fail the publish to the other recipients.
    /// </summary>
    [Fact]
    public async Task A_user_id_over_the_envelope_limit_never_poisons_a_publish_to_the_other_recipients()
    {
        var prefix = RedisFixture.UniquePrefix("longid");
        var longId = string.Concat(Enumerable.Repeat("😀", 1000)); // 1,000 characters, 4,000 UTF-8 bytes.
        await using var node1 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => o.NodeId = "longid-n1");
        await using var node2 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => o.NodeId = "longid-n2");
        using var alice = await node2.ConnectAsync("alice");
        using var bob = await node1.ConnectAsync("bob");
        var longSocket = Ws.Create(longId);
        var accepted = true;
        try
        {
            await longSocket.ConnectAsync(node1.WebSocketUri, CancellationToken.None).WaitAsync(Ws.Timeout);
        }
        catch (WebSocketException)
        {
            accepted = false; // Refusing the id up front is an acceptable fix.
        }

        output.WriteLine($"a {System.Text.Encoding.UTF8.GetByteCount(longId)}-byte user id was {(accepted ? "accepted" : "refused")} by the endpoint");
        await Eventually.TrueAsync(async () => (await node1.Registry.LocateAsync(["alice"])).UsersByNode.ContainsKey("longid-n2"), "alice located");

        var error = await Record.ExceptionAsync(async () => await node1.Broadcaster.PublishAsync(["alice", "bob", longId], "{\"to\":\"all three\"}"u8.ToArray()));
        Assert.Null(error);
        Assert.Equal("{\"to\":\"all three\"}", await alice.ReceiveTextAsync());
        Assert.Equal("{\"to\":\"all three\"}", await bob.ReceiveTextAsync());
        await longSocket.CloseQuietlyAsync();
        await alice.CloseQuietlyAsync();
        await bob.CloseQuietlyAsync();
    }
}
