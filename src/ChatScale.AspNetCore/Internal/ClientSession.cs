using System.Buffers;
using System.Net.WebSockets;
using ChatScale.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Runs one accepted WebSocket until it ends: the receive loop (frame cap, message rate, UTF-8 JSON check, the
/// application's <see cref="IClientMessageHandler"/>), and the close handling when either side ends it. One instance
/// serves every connection of the endpoint; all per-connection state lives on the stack of <see cref="RunAsync"/>.
/// </summary>
internal sealed class ClientSession
{
    private const int InitialReceiveBuffer = 4 * 1024;

    private readonly ChatScaleEndpointOptions _endpointOptions;
    private readonly AspNetCoreMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly int _maxMessageBytes;
    private readonly int _receiveCap;

    // How long a server-decided close may take: the burst in flight finishing, then the client's close reply.
    private readonly TimeSpan _closeBound;

    public ClientSession(ChatScaleOptions options, ChatScaleEndpointOptions endpointOptions, AspNetCoreMetrics metrics, ILogger logger, TimeProvider time)
    {
        var maxMessageBytes = options.MaxIncomingFrameBytes;
        _maxMessageBytes = maxMessageBytes;
        _closeBound = options.SlowConsumerCloseTimeout + ChatScaleEndpoint.CloseHandshakeTimeout;
        _receiveCap = (int)Math.Min((long)maxMessageBytes + 1, Array.MaxLength);
        _endpointOptions = endpointOptions;
        _metrics = metrics;
        _logger = logger;
        _time = time;
    }

    public async Task<string> RunAsync(HttpContext context, WebSocket socket, ClientConnection connection, ChatScaleConnectionContext connectionContext, IClientMessageHandler? handler)
    {
        // Every path below awaits the receive loop before it returns, so the request's own token is all the handler
        // needs (a linked source would cost every idle connection a source and two registrations).
        var receive = ReceiveAsync(socket, connectionContext, handler, context.RequestAborted);
        if (await Task.WhenAny(receive, connection.Completion).ConfigureAwait(false) != receive)
        {
            // The server closed the connection (shutdown, or a slow consumer under the close policy), or sending
            // failed: let the client answer the close frame, but not forever.
            await WaitAsync(receive, ChatScaleEndpoint.CloseHandshakeTimeout).ConfigureAwait(false);
            if (!receive.IsCompleted)
            {
                socket.Abort();
            }
        }

        var (outcome, status, reason, exception) = await receive.ConfigureAwait(false);
        switch (outcome)
        {
            case ReceiveEnd.ClientClosed:
                // Answer the client's close (no-op when the server closed first); frames still queued are moot.
                await connection.CloseAsync(ConnectionCloseStatus.NormalClosure, string.Empty, TimeSpan.Zero).ConfigureAwait(false);
                return connection.CloseStatus is { } closedWith and not ConnectionCloseStatus.NormalClosure ? CloseStatusNames.Describe(closedWith) : "client_closed";

            case ReceiveEnd.Violation:
                if (exception is not null)
                {
                    AspNetCoreLog.HandlerFailed(_logger, exception, connection.ConnectionId, connection.UserId);
                }
                else
                {
                    AspNetCoreLog.ClosingConnection(_logger, connection.ConnectionId, connection.UserId, status, reason);
                }

                // Queued frames are dropped, but a burst being written may finish (within the slow-consumer close
                // timeout), so the close frame reaches a client that reads, even slowly; meanwhile keep reading.
                var closing = connection.CloseAsync(status, reason, TimeSpan.Zero);
                await DrainUntilCloseAsync(socket, _closeBound, context.RequestAborted).ConfigureAwait(false);
                await WaitAsync(closing, ChatScaleEndpoint.CloseHandshakeTimeout).ConfigureAwait(false);
                return CloseStatusNames.Describe(status);

            default:
                AspNetCoreLog.ConnectionAborted(_logger, exception, connection.ConnectionId);
                return "aborted";
        }
    }

    private async Task<ReceiveOutcome> ReceiveAsync(
        WebSocket socket,
        ChatScaleConnectionContext connectionContext,
        IClientMessageHandler? handler,
        CancellationToken cancellationToken)
    {
        // No buffer while waiting: a zero-byte receive waits for the next frame, and a buffer is rented only once
        // its data is there (and returned after each message), so an idle connection holds none.
        byte[]? buffer = null;
        var count = 0;
        var rate = _endpointOptions.MessagesPerSecond > 0 ? new TokenBucket(_endpointOptions.MessagesPerSecond, _endpointOptions.MessageBurst, _time) : null;
        try
        {
            if (handler is not null)
            {
                try
                {
                    await handler.OnConnectedAsync(connectionContext, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    return new(ReceiveEnd.Violation, ConnectionCloseStatus.InternalServerError, "Server error.", ex);
                }
            }

            while (true)
            {
                ValueWebSocketReceiveResult result;
                if (buffer is null)
                {
                    // Without a token: a registration per connection for nothing, since the read ends when the
                    // connection does (the server aborts it, or the client goes away).
                    result = await socket.ReceiveAsync(Memory<byte>.Empty, CancellationToken.None).ConfigureAwait(false);
                    buffer = ArrayPool<byte>.Shared.Rent(Math.Min(InitialReceiveBuffer, _receiveCap));
                    if (result.MessageType != WebSocketMessageType.Close && !result.EndOfMessage)
                    {
                        result = await socket.ReceiveAsync(ReceiveWindow(buffer, count), CancellationToken.None).ConfigureAwait(false);
                    }
                }
                else
                {
                    if (count == buffer.Length)
                    {
                        // Grow to at most one byte past the cap: enough to tell that a message is too big.
                        var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(buffer.Length * 2L, _receiveCap));
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    result = await socket.ReceiveAsync(ReceiveWindow(buffer, count), CancellationToken.None).ConfigureAwait(false);
                }

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return new(ReceiveEnd.ClientClosed, ConnectionCloseStatus.NormalClosure, string.Empty, null);
                }

                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    return new(ReceiveEnd.Violation, ConnectionCloseStatus.InvalidMessageType, "Only text frames of UTF-8 JSON are accepted.", null);
                }

                count += result.Count;
                if (count > _maxMessageBytes)
                {
                    return new(ReceiveEnd.Violation, ConnectionCloseStatus.MessageTooBig, $"Messages are limited to {_maxMessageBytes} bytes.", null);
                }

                if (!result.EndOfMessage)
                {
                    continue;
                }

                var message = buffer.AsMemory(0, count);
                count = 0;
                if (rate?.TryTake() == false)
                {
                    return new(ReceiveEnd.Violation, ConnectionCloseStatus.PolicyViolation, "Message rate limit exceeded.", null);
                }

                if (!ClientMessageValidator.IsUtf8Json(message.Span))
                {
                    return new(ReceiveEnd.Violation, ConnectionCloseStatus.InvalidPayloadData, "Text frames must be UTF-8 JSON.", null);
                }

                _metrics.MessageReceived();
                if (handler is not null)
                {
                    try
                    {
                        await handler.OnMessageAsync(connectionContext, message, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                    {
                        return new(ReceiveEnd.Violation, ConnectionCloseStatus.InternalServerError, "Server error.", ex);
                    }
                }

                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            return new(ReceiveEnd.Aborted, ConnectionCloseStatus.NormalClosure, string.Empty, ex);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    // After a server-initiated close, read and discard until the client's close frame, so that unread input never
    // turns the close into a TCP reset that would hide the close status from the client.
    /// <summary>Where the next receive writes: at most one byte past the cap, whatever size the pool rounded the buffer up to.</summary>
    private Memory<byte> ReceiveWindow(byte[] buffer, int count) => buffer.AsMemory(count, Math.Min(buffer.Length, _receiveCap) - count);

    private static async Task DrainUntilCloseAsync(WebSocket socket, TimeSpan bound, CancellationToken requestAborted)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        deadline.CancelAfter(bound);
        var scratch = ArrayPool<byte>.Shared.Rent(InitialReceiveBuffer);
        try
        {
            while (socket.State is WebSocketState.Open or WebSocketState.CloseSent)
            {
                var result = await socket.ReceiveAsync(scratch.AsMemory(), deadline.Token).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The client did not answer in time or went away: the socket is dropped.
        }
    }

    internal static async Task WaitAsync(Task task, TimeSpan timeout)
    {
        try
        {
            await task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or WebSocketException or IOException)
        {
            // Bounded wait: the caller proceeds either way.
        }
    }
}
