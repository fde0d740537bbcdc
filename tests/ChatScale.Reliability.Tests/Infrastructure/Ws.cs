using System.Text;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>Real <see cref="ClientWebSocket"/> helpers with generous timeouts (the machine is small and shared).</summary>
internal static class Ws
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public static ClientWebSocket Create(string? user, string? origin = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (user is not null)
        {
            socket.Options.SetRequestHeader(HeaderAuthHandler.UserHeader, HeaderAuthHandler.Encode(user));
        }

        if (origin is not null)
        {
            socket.Options.SetRequestHeader("Origin", origin);
        }

        return socket;
    }

    public static async Task<ClientWebSocket> ConnectAsync(Uri uri, string? user, string? origin = null)
    {
        var socket = Create(user, origin);
        using var timeout = new CancellationTokenSource(Timeout);
        await socket.ConnectAsync(uri, timeout.Token);
        return socket;
    }

    /// <summary>Attempts a connection the server should refuse and returns the HTTP status it answered with.</summary>
    public static async Task<int> ConnectExpectingStatusAsync(Uri uri, string? user, string? origin = null)
    {
        using var socket = Create(user, origin);
        using var timeout = new CancellationTokenSource(Timeout);
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, timeout.Token));
        return (int)socket.HttpStatusCode;
    }

    /// <summary>Closes politely, tolerating a server or socket that is already gone.</summary>
    public static async Task CloseQuietlyAsync(this ClientWebSocket socket)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            if (socket.State == WebSocketState.Open)
            {
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // Already gone.
        }
        finally
        {
            socket.Dispose();
        }
    }
}
