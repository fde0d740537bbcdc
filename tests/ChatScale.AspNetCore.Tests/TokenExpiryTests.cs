using System.Diagnostics;
using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.AspNetCore.Tests;

/// <summary>A connection lives no longer than the authentication that opened it (<see cref="ChatScaleEndpointOptions.CloseOnTokenExpiry"/>).</summary>
public sealed class TokenExpiryTests
{
    private static ClientWebSocket Client(string user, DateTimeOffset expires)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.SetRequestHeader(TestAuthHandler.UserHeader, user);
        socket.Options.SetRequestHeader(TestAuthHandler.ExpiresHeader, expires.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        return socket;
    }

    [Fact]
    public async Task Connection_is_closed_with_1008_token_expired_at_the_tickets_expiry_and_leaves_presence()
    {
        await using var node = await TestNode.StartAsync();
        // Whole seconds, as AuthenticationProperties keeps ExpiresUtc (and as a JWT's exp is).
        var expires = DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.AddSeconds(3).ToUnixTimeSeconds());
        using var alice = Client("alice", expires);
        using var timeout = new CancellationTokenSource(TestClient.Timeout);
        await alice.ConnectAsync(node.WebSocketUri, timeout.Token);
        using var bob = await node.ConnectAsync("bob");

        // Still working before the expiry.
        await node.Broadcaster.PublishAsync(["alice"], Encoding.UTF8.GetBytes("""{"before":true}"""));
        Assert.Equal("""{"before":true}""", await alice.ReceiveTextAsync());

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, await alice.ReceiveCloseAsync());
        var closedAt = DateTimeOffset.UtcNow;
        Assert.Equal("Token expired.", alice.CloseStatusDescription);
        Assert.True(closedAt >= expires, $"closed at {closedAt:O}, before the expiry {expires:O}");
        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "alice left presence");

        // A connection without an expiry is untouched.
        Assert.Equal(WebSocketState.Open, bob.State);
        await node.Broadcaster.PublishAsync(["bob"], Encoding.UTF8.GetBytes("""{"after":true}"""));
        Assert.Equal("""{"after":true}""", await bob.ReceiveTextAsync());
    }

    [Fact]
    public async Task Already_expired_authentication_gets_401_and_no_connection()
    {
        await using var node = await TestNode.StartAsync();
        using var alice = Client("alice", DateTimeOffset.UtcNow.AddSeconds(-1));
        using var timeout = new CancellationTokenSource(TestClient.Timeout);

        await Assert.ThrowsAsync<WebSocketException>(() => alice.ConnectAsync(node.WebSocketUri, timeout.Token));

        Assert.Equal(StatusCodes.Status401Unauthorized, (int)alice.HttpStatusCode);
        Assert.Equal(0, await node.Registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task With_the_option_off_an_expiring_ticket_keeps_its_connection()
    {
        await using var node = await TestNode.StartAsync(configure: b => b.Services.Configure<ChatScaleEndpointOptions>(o => o.CloseOnTokenExpiry = false));
        using var alice = Client("alice", DateTimeOffset.UtcNow.AddMilliseconds(300));
        using var timeout = new CancellationTokenSource(TestClient.Timeout);
        await alice.ConnectAsync(node.WebSocketUri, timeout.Token);

        // Well past the expiry, a publish still arrives on the same connection.
        var clock = Stopwatch.StartNew();
        await Poll.UntilAsync(() => clock.Elapsed > TimeSpan.FromSeconds(1.5), "the expiry has long passed");
        await node.Broadcaster.PublishAsync(["alice"], Encoding.UTF8.GetBytes("""{"still":true}"""));
        Assert.Equal("""{"still":true}""", await alice.ReceiveTextAsync());
    }
}
