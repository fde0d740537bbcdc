using System.Net.WebSockets;
using System.Text;
using Xunit;

namespace ChatScale.Testing;

/// <summary>Send and receive helpers for real <see cref="ClientWebSocket"/>s, with generous timeouts (the test machine is small and shared).</summary>
public static class WebSocketTestExtensions
{
    /// <summary>The default time a send or receive may take.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Sends one whole text message.</summary>
    public static async Task SendTextAsync(this ClientWebSocket socket, string text)
    {
        using var timeout = new CancellationTokenSource(DefaultTimeout);
        await socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, timeout.Token);
    }

    /// <summary>Receives the next whole message as text; fails if the server closes instead.</summary>
    public static async Task<string> ReceiveTextAsync(this ClientWebSocket socket, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
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

    /// <summary>Reads (and discards) until the server's close frame, answers it, and returns the close status.</summary>
    public static async Task<WebSocketCloseStatus?> ReceiveCloseAsync(this ClientWebSocket socket)
    {
        using var timeout = new CancellationTokenSource(DefaultTimeout);
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
                        // The server may drop the TCP connection right after its close frame (after a protocol error
                        // it detected itself, say); the status has been read either way.
                    }
                }

                return socket.CloseStatus;
            }
        }
    }
}
