global using System.Net.WebSockets;
using System.Text;

namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>Real <see cref="ClientWebSocket"/> helpers with generous timeouts (the test machine is small and shared).</summary>
internal static class TestClient
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    public static async Task<ClientWebSocket> ConnectAsync(Uri uri, string? user, string? origin = null, string? role = null)
    {
        var socket = Create(user, origin, role);
        using var timeout = new CancellationTokenSource(Timeout);
        await socket.ConnectAsync(uri, timeout.Token);
        return socket;
    }

    /// <summary>Attempts a connection that the server should refuse, and returns the HTTP status it answered with.</summary>
    public static async Task<int> ConnectExpectingStatusAsync(Uri uri, string? user, string? origin = null, string? role = null)
    {
        using var socket = Create(user, origin, role);
        using var timeout = new CancellationTokenSource(Timeout);
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, timeout.Token));
        Assert.NotEqual(WebSocketState.Open, socket.State);
        return (int)socket.HttpStatusCode;
    }

    private static ClientWebSocket Create(string? user, string? origin, string? role)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (user is not null)
        {
            socket.Options.SetRequestHeader(TestAuthHandler.UserHeader, user);
        }

        if (role is not null)
        {
            socket.Options.SetRequestHeader(TestAuthHandler.RoleHeader, role);
        }

        if (origin is not null)
        {
            socket.Options.SetRequestHeader("Origin", origin);
        }

        return socket;
    }
}
