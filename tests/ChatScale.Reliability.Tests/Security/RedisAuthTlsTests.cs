using System.Globalization;
using ChatScale.Reliability.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>
/// Redis password and TLS settings in <c>AddRedis</c>'s connection string reach StackExchange.Redis untouched: a
/// password-protected and a TLS-only redis-server carry real traffic, and the same hosts without the secret (or
/// without trusting the CA) cannot use Redis at all.
/// </summary>
public sealed class RedisAuthTlsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_password_in_the_AddRedis_connection_string_authenticates_and_a_wrong_one_is_refused()
    {
        await using var redis = await SecuredRedisServer.StartAsync("p@ss=word;42", tls: false);
        var endpoint = $"127.0.0.1:{redis.Port.ToString(CultureInfo.InvariantCulture)}";
        var prefix = RedisFixture.UniquePrefix("auth");

        // A password with '@', '=' and ';' written into the connection string by StackExchange.Redis itself.
        var options = new ConfigurationOptions { EndPoints = { endpoint }, Password = redis.Password };
        await using var node1 = await ChatHost.StartAsync(options.ToString(includePassword: true), prefix, o => o.NodeId = "auth-n1");
        await using var node2 = await ChatHost.StartAsync(options.ToString(includePassword: true), prefix, o => o.NodeId = "auth-n2");
        await AssertCarriesTrafficAsync(node1, node2);

        var wrong = new ConfigurationOptions { EndPoints = { endpoint }, Password = "wrong" };
        await using var intruder = await ChatHost.StartAsync(wrong.ToString(includePassword: true), prefix, o => o.NodeId = "auth-intruder");
        Assert.Equal(503, await Ws.ConnectExpectingStatusAsync(intruder.WebSocketUri, "mallory"));
        output.WriteLine("password: traffic flows with the right password; the wrong one gets 503 (presence unavailable) on connect");
    }

    [Fact]
    public async Task TLS_settings_in_the_AddRedis_connection_string_reach_a_TLS_only_Redis_and_the_certificate_is_verified()
    {
        await using var redis = await SecuredRedisServer.StartAsync("tls-secret", tls: true);
        var connection = $"127.0.0.1:{redis.Port.ToString(CultureInfo.InvariantCulture)},ssl=true,sslHost=localhost,password={redis.Password}";
        var prefix = RedisFixture.UniquePrefix("tls");

        // An untrusted (self-signed) CA: the handshake fails, so nothing reaches Redis in clear either (the server
        // only listens for TLS).
        await using (var untrusting = await ChatHost.StartAsync(connection, prefix, o => o.NodeId = "tls-untrusting"))
        {
            Assert.Equal(503, await Ws.ConnectExpectingStatusAsync(untrusting.WebSocketUri, "alice"));
        }

        // StackExchange.Redis trusts an extra issuer named by SERedis_IssuerCertPath, read when the multiplexer's
        // options are created; AddRedis creates them from the connection string at host start.
        var previous = Environment.GetEnvironmentVariable("SERedis_IssuerCertPath");
        Environment.SetEnvironmentVariable("SERedis_IssuerCertPath", redis.CaCertificatePath);
        ChatHost node1, node2;
        try
        {
            node1 = await ChatHost.StartAsync(connection, prefix, o => o.NodeId = "tls-n1");
            node2 = await ChatHost.StartAsync(connection, prefix, o => o.NodeId = "tls-n2");
        }
        finally
        {
            Environment.SetEnvironmentVariable("SERedis_IssuerCertPath", previous);
        }

        await using (node1)
        await using (node2)
        {
            await AssertCarriesTrafficAsync(node1, node2);
        }

        output.WriteLine("TLS: a TLS-only redis-server (self-signed CA made with openssl) carries presence and pub/sub when the CA is trusted; 503 when it is not");
    }

    // Publishes until the frame arrives: a node may accept clients and register presence a moment before its
    // backplane subscription is live (a slower TLS connect makes that window visible), and pub/sub is at-most-once.
    private async Task AssertCarriesTrafficAsync(ChatHost node1, ChatHost node2)
    {
        using var alice = await node1.ConnectAsync("alice");
        using var bob = await node2.ConnectAsync("bob");
        await Eventually.TrueAsync(async () => (await node1.Registry.LocateAsync(["bob"])).OfflineUsers.Count == 0, "bob located through Redis");
        var targeted = await PublishUntilReceivedAsync(bob, () => node1.Broadcaster.PublishAsync(["bob"], "{\"over\":\"redis\"}"u8.ToArray()).AsTask());
        Assert.Equal("{\"over\":\"redis\"}", targeted.Frame);
        var toAll = await PublishUntilReceivedAsync(alice, () => node2.Broadcaster.PublishToAllAsync("{\"to\":\"all\"}"u8.ToArray()).AsTask());
        Assert.Equal("{\"to\":\"all\"}", toAll.Frame);
        output.WriteLine($"publishes until the first delivery: {targeted.Attempts} targeted, {toAll.Attempts} to all");
        await alice.CloseQuietlyAsync();
        await bob.CloseQuietlyAsync();
    }

    private static async Task<(string Frame, int Attempts)> PublishUntilReceivedAsync(ClientWebSocket socket, Func<Task> publish)
    {
        var received = socket.ReceiveTextAsync(TimeSpan.FromSeconds(60));
        var attempts = 0;
        while (!received.IsCompleted && attempts < 200)
        {
            await publish();
            attempts++;
            await Task.WhenAny(received, Task.Delay(200));
        }

        return (await received, attempts);
    }
}
