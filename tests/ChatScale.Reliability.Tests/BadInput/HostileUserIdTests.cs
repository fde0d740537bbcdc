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
}
