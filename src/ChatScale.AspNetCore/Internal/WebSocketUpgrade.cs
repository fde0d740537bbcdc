using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Completes the WebSocket handshake. Over HTTP/1.1 it upgrades through the server itself (RFC 6455 section 4.2.2)
/// and keeps the raw stream, so that ChatScale owns the write side (<see cref="WebSocketFrameWriter"/>) while a
/// server <see cref="WebSocket"/> over the same stream does the receive side, pings, pongs and close frames. Where
/// the server cannot upgrade (WebSockets over HTTP/2), it falls back to the WebSocket middleware's accept.
/// </summary>
internal static class WebSocketUpgrade
{
    private const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>Accepts the request (which the middleware has already checked to be a WebSocket request).</summary>
    /// <returns>The socket, and the writer for data bursts when ChatScale owns the write side.</returns>
    public static async Task<(WebSocket Socket, WebSocketFrameWriter? Writer)> AcceptAsync(HttpContext context, WebSocketAcceptContext acceptContext)
    {
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        var key = context.Request.Headers.SecWebSocketKey.ToString();
        if (upgrade is not { IsUpgradableRequest: true } || key.Length == 0)
        {
            return (await context.WebSockets.AcceptWebSocketAsync(acceptContext).ConfigureAwait(false), null);
        }

        // A WebSocket lives far longer than any request timeout.
        context.Features.Get<Microsoft.AspNetCore.Http.Timeouts.IHttpRequestTimeoutFeature>()?.DisableTimeout();
        var headers = context.Response.Headers;
        headers.Connection = HeaderNames.Upgrade;
        headers.Upgrade = "websocket";
        headers.SecWebSocketAccept = AcceptKey(key);
        var stream = await upgrade.UpgradeAsync().ConfigureAwait(false);
        var writeLock = new SemaphoreSlim(1, 1);
        var shared = new SerializedWriteStream(stream, writeLock, context);
        var socket = WebSocket.CreateFromStream(shared, new WebSocketCreationOptions
        {
            IsServer = true,
            KeepAliveInterval = acceptContext.KeepAliveInterval ?? WebSocket.DefaultKeepAliveInterval,
            KeepAliveTimeout = acceptContext.KeepAliveTimeout ?? Timeout.InfiniteTimeSpan,
        });
        shared.Socket = socket;
        return (socket, new WebSocketFrameWriter(stream, writeLock));
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 6455 defines Sec-WebSocket-Accept as SHA-1 of the key; it is not used for security.")]
    private static string AcceptKey(string key)
    {
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid), hash);
        return Convert.ToBase64String(hash);
    }
}
