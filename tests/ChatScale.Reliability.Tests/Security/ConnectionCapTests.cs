using System.Text;
using ChatScale.Reliability.Tests.Infrastructure;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>One user cannot take a node's connections: past the per-user cap, only that user is refused.</summary>
[Collection(SharedRedis.Name)]
public sealed class ConnectionCapTests(RedisFixture redis)
{
    [Fact]
    public async Task One_user_past_the_per_user_cap_gets_429_while_other_users_still_connect_and_receive()
    {
        await using var node = await ChatHost.StartAsync(redis.ConnectionString, RedisFixture.UniquePrefix("usercap"), endpoint: o => o.MaxConnectionsPerUser = 4);
        var alice = new List<ClientWebSocket>();
        var others = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                alice.Add(await node.ConnectAsync("alice"));
            }

            // Twenty more tries, concurrently, all refused with 429 and Retry-After; none reaches presence.
            var refused = await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
            {
                using var socket = Ws.Create("alice");
                using var timeout = new CancellationTokenSource(Ws.Timeout);
                await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(node.WebSocketUri, timeout.Token));
                return ((int)socket.HttpStatusCode, socket.HttpResponseHeaders!.TryGetValue("Retry-After", out var retry) ? string.Join(",", retry) : null);
            }));
            Assert.All(refused, r => Assert.Equal((429, "5"), r));
            Assert.Equal(4, await node.Registry.GetConnectionCountAsync("alice"));

            // Everyone else is unaffected: they connect, and every connection (alice's four included) receives.
            for (var i = 0; i < 10; i++)
            {
                others.Add(await node.ConnectAsync($"user-{i}"));
            }

            string[] everyone = ["alice", .. Enumerable.Range(0, 10).Select(i => $"user-{i}")];
            var result = await node.Broadcaster.PublishAsync(everyone, Encoding.UTF8.GetBytes("""{"hello":1}"""));
            Assert.Empty(result.OfflineUsers);
            foreach (var socket in alice.Concat(others))
            {
                Assert.Equal("""{"hello":1}""", await socket.ReceiveTextAsync());
            }

            // Closing one of alice's connections gives her the slot back.
            await alice[0].CloseQuietlyAsync();
            alice.RemoveAt(0);
            await Eventually.TrueAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 3, "alice's closed connection left presence");
            await Eventually.TrueAsync(
                async () =>
                {
                    try
                    {
                        alice.Add(await node.ConnectAsync("alice"));
                        return true;
                    }
                    catch (WebSocketException)
                    {
                        return false;
                    }
                },
                "alice can connect again");
        }
        finally
        {
            foreach (var socket in alice.Concat(others))
            {
                await socket.CloseQuietlyAsync();
            }
        }
    }
}
