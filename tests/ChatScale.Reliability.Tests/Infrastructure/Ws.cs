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

    public static async Task SendTextAsync(this ClientWebSocket socket, string text)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, timeout.Token);
    }

    /// <summary>The next whole message as text; fails if the server closes instead.</summary>
    public static async Task<string> ReceiveTextAsync(this ClientWebSocket socket, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        var buffer = new byte[16 * 1024];
        using var message = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, cts.Token);
            Assert.True(result.MessageType != WebSocketMessageType.Close, $"Expected a message, but the server closed with {socket.CloseStatus} '{socket.CloseStatusDescription}'.");
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return Encoding.UTF8.GetString(message.ToArray());
            }
        }
    }

    /// <summary>Reads and discards until the server's close frame, answers it, and returns the close status.</summary>
    public static async Task<WebSocketCloseStatus?> ReceiveCloseAsync(this ClientWebSocket socket)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, timeout.Token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                if (socket.State == WebSocketState.CloseReceived)
                {
                    try
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, string.Empty, timeout.Token);
                    }
                    catch (WebSocketException)
                    {
                        // The server may drop the TCP connection right after its close frame.
                    }
                }

                return socket.CloseStatus;
            }
        }
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
