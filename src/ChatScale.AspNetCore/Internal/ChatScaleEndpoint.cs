using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Unicode;
using ChatScale.Backplane;
using ChatScale.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The request delegate behind <c>MapChatScale</c>: authenticate, check the origin, join the local fan-out engine and
/// presence, upgrade, then run the receive loop until the connection ends, and leave on every exit path.
/// </summary>
internal sealed class ChatScaleEndpoint
{
    // How long a closing side waits for the other's close frame before it drops the socket.
    internal static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(5);

    private const int InitialReceiveBuffer = 4 * 1024;
    private static readonly JsonReaderOptions JsonOptions = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 };

    private readonly LocalConnections _connections;
    private readonly IConnectionRegistry _registry;
    private readonly IUserIdResolver _userIds;
    private readonly ChatScaleNodeState _state;
    private readonly AspNetCoreMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly OriginPolicy _origins;
    private readonly ConnectionAdmission _admission;
    private readonly ChatScaleEndpointOptions _endpointOptions;
    private readonly WebSocketAcceptContext _acceptContext;
    private readonly string _nodeId;
    private readonly int _maxMessageBytes;
    private readonly int _receiveCap;

    public ChatScaleEndpoint(
        LocalConnections connections,
        IConnectionRegistry registry,
        IUserIdResolver userIds,
        ChatScaleNodeState state,
        AspNetCoreMetrics metrics,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleEndpointOptions> endpointOptions,
        ConnectionAdmission admission,
        ILogger<ChatScaleEndpoint> logger,
        TimeProvider? timeProvider = null)
    {
        _connections = connections;
        _registry = registry;
        _userIds = userIds;
        _state = state;
        _metrics = metrics;
        _logger = logger;
        _time = timeProvider ?? TimeProvider.System;
        _nodeId = options.Value.NodeId;
        _maxMessageBytes = options.Value.MaxIncomingFrameBytes;
        _receiveCap = (int)Math.Min((long)_maxMessageBytes + 1, Array.MaxLength);
        _endpointOptions = endpointOptions.Value;
        _origins = new OriginPolicy(_endpointOptions.AllowedOrigins);
        _admission = admission;
        _acceptContext = new WebSocketAcceptContext
        {
            KeepAliveInterval = _endpointOptions.KeepAliveInterval,
            KeepAliveTimeout = _endpointOptions.KeepAliveTimeout == TimeSpan.Zero ? Timeout.InfiniteTimeSpan : _endpointOptions.KeepAliveTimeout,
        };
    }

    private enum Outcome
    {
        ClientClosed,
        Violation,
        Aborted,
    }

    public async Task HandleAsync(HttpContext context)
    {
        var userId = _userIds.GetUserId(context);
        if (string.IsNullOrEmpty(userId))
        {
            if (context.User.Identity?.IsAuthenticated == true)
            {
                AspNetCoreLog.NoUserId(_logger);
            }

            Reject(context, StatusCodes.Status401Unauthorized, "unauthenticated", "no authenticated user");
            return;
        }

        // An id the backplane cannot carry could never receive a message, and would be listed in presence: refuse it.
        if (!EnvelopeCodec.CanEncodeUserId(userId))
        {
            AspNetCoreLog.UserIdUnusable(_logger, userId.Length);
            Reject(context, StatusCodes.Status403Forbidden, "user_id", "user id not usable");
            return;
        }

        if (!_origins.IsAllowed(context.Request, out var origin))
        {
            AspNetCoreLog.OriginRejected(_logger, origin ?? string.Empty);
            Reject(context, StatusCodes.Status403Forbidden, "origin", "origin not allowed");
            return;
        }

        if (!context.WebSockets.IsWebSocketRequest)
        {
            // RFC 6455 4.4: tell a client with another protocol version (or none) which one this server speaks.
            context.Response.Headers.SecWebSocketVersion = "13";
            Reject(context, StatusCodes.Status400BadRequest, "not_websocket", "not a WebSocket request");
            return;
        }

        if (_state.IsStopping)
        {
            Reject(context, StatusCodes.Status503ServiceUnavailable, "stopping", "node shutting down");
            return;
        }

        var expiresAt = TokenExpiry.Find(context, _endpointOptions);
        if (expiresAt <= _time.GetUtcNow())
        {
            Reject(context, StatusCodes.Status401Unauthorized, "token_expired", "authentication expired");
            return;
        }

        // Per-user, per-node and in-progress caps, checked before anything reaches presence (the refusal is written).
        using var admitted = await _admission.AdmitAsync(context, userId).ConfigureAwait(false);
        if (admitted is null)
        {
            return;
        }

        // Join the fan-out engine and presence BEFORE the upgrade: once the client sees 101, every node can reach it,
        // and frames published meanwhile wait in the connection's queue until the socket is attached.
        var transport = new WebSocketTransport();
        var connection = _connections.Add(userId, transport);
        var registration = new ConnectionRegistration(connection.ConnectionId, userId, _nodeId);
        var registering = false;
        WebSocket? socket = null;
        ChatScaleConnectionContext? connectionContext = null;
        IClientMessageHandler? handler = null;
        try
        {
            try
            {
                registering = true;
                await _registry.RegisterAsync(registration, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested)
            {
                AspNetCoreLog.RegisterFailed(_logger, ex, connection.ConnectionId, userId);
                Reject(context, StatusCodes.Status503ServiceUnavailable, "presence_unavailable", "presence unavailable");
                return;
            }

            // Shutdown may have closed every connection while this one was registering.
            if (_state.IsStopping)
            {
                Reject(context, StatusCodes.Status503ServiceUnavailable, "stopping", "node shutting down");
                return;
            }

            socket = await context.WebSockets.AcceptWebSocketAsync(_acceptContext).ConfigureAwait(false);
            transport.Attach(socket);
            admitted.Upgraded();
            using var expiry = TokenExpiry.CloseWhenExpired(connection, expiresAt, _time, _logger);
            AspNetCoreLog.Accepted(_logger, connection.ConnectionId, userId);
            connectionContext = new ChatScaleConnectionContext(connection, context, _nodeId);
            handler = context.RequestServices.GetService<IClientMessageHandler>();
            _metrics.Closed(await RunAsync(context, socket, connection, connectionContext, handler).ConfigureAwait(false));
        }
        catch (Exception ex) when (context.RequestAborted.IsCancellationRequested || ex is WebSocketException or IOException)
        {
            // The client went away during the handshake.
            AspNetCoreLog.ConnectionAborted(_logger, ex, connection.ConnectionId);
        }
        finally
        {
            connection.Abort();
            await WaitAsync(connection.Completion, CloseHandshakeTimeout).ConfigureAwait(false);
            socket?.Dispose();
            if (registering)
            {
                await UnregisterAsync(registration).ConfigureAwait(false);
            }

            if (handler is not null && connectionContext is not null)
            {
                await OnDisconnectedAsync(handler, connectionContext).ConfigureAwait(false);
            }
        }
    }

    private async Task<string> RunAsync(HttpContext context, WebSocket socket, ClientConnection connection, ChatScaleConnectionContext connectionContext, IClientMessageHandler? handler)
    {
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(InitialReceiveBuffer, _receiveCap));
        try
        {
            var receive = ReceiveAsync(socket, connectionContext, handler, buffer, ended.Token);
            if (await Task.WhenAny(receive, connection.Completion).ConfigureAwait(false) != receive)
            {
                // The server closed the connection (shutdown, or a slow consumer under the close policy), or sending
                // failed: let the client answer the close frame, but not forever.
                await WaitAsync(receive, CloseHandshakeTimeout).ConfigureAwait(false);
                if (!receive.IsCompleted)
                {
                    socket.Abort();
                }
            }

            var (outcome, status, reason, exception) = await receive.ConfigureAwait(false);
            switch (outcome)
            {
                case Outcome.ClientClosed:
                    // Answer the client's close (no-op when the server closed first); frames still queued are moot.
                    await connection.CloseAsync(ConnectionCloseStatus.NormalClosure, string.Empty, TimeSpan.Zero).ConfigureAwait(false);
                    return connection.CloseStatus is { } closedWith and not ConnectionCloseStatus.NormalClosure ? Describe(closedWith) : "client_closed";

                case Outcome.Violation:
                    if (exception is not null)
                    {
                        AspNetCoreLog.HandlerFailed(_logger, exception, connection.ConnectionId, connection.UserId);
                    }
                    else
                    {
                        AspNetCoreLog.ClosingConnection(_logger, connection.ConnectionId, connection.UserId, status, reason);
                    }

                    var closing = connection.CloseAsync(status, reason, TimeSpan.Zero);
                    await DrainUntilCloseAsync(socket, buffer, context.RequestAborted).ConfigureAwait(false);
                    await WaitAsync(closing, CloseHandshakeTimeout).ConfigureAwait(false);
                    return Describe(status);

                default:
                    AspNetCoreLog.ConnectionAborted(_logger, exception, connection.ConnectionId);
                    return "aborted";
            }
        }
        finally
        {
            await ended.CancelAsync().ConfigureAwait(false);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task<(Outcome Outcome, ConnectionCloseStatus Status, string Reason, Exception? Exception)> ReceiveAsync(
        WebSocket socket,
        ChatScaleConnectionContext connectionContext,
        IClientMessageHandler? handler,
        byte[] initialBuffer,
        CancellationToken cancellationToken)
    {
        var buffer = initialBuffer;
        var count = 0;
        var rate = new TokenBucket(_endpointOptions.MessagesPerSecond, _endpointOptions.MessageBurst, _time);
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
                    return (Outcome.Violation, ConnectionCloseStatus.InternalServerError, "Server error.", ex);
                }
            }

            while (true)
            {
                if (count == buffer.Length)
                {
                    // Grow to at most one byte past the cap: enough to tell that a message is too big.
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(buffer.Length * 2L, _receiveCap));
                    buffer.AsSpan(0, count).CopyTo(larger);
                    if (!ReferenceEquals(buffer, initialBuffer))
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }

                    buffer = larger;
                }

                // Read at most one byte past the cap, whatever size the pool rounded the buffer up to.
                var result = await socket.ReceiveAsync(buffer.AsMemory(count, Math.Min(buffer.Length, _receiveCap) - count), cancellationToken).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return (Outcome.ClientClosed, ConnectionCloseStatus.NormalClosure, string.Empty, null);
                }

                if (result.MessageType == WebSocketMessageType.Binary)
                {
                    return (Outcome.Violation, ConnectionCloseStatus.InvalidMessageType, "Only text frames of UTF-8 JSON are accepted.", null);
                }

                count += result.Count;
                if (count > _maxMessageBytes)
                {
                    return (Outcome.Violation, ConnectionCloseStatus.MessageTooBig, $"Messages are limited to {_maxMessageBytes} bytes.", null);
                }

                if (!result.EndOfMessage)
                {
                    continue;
                }

                var message = buffer.AsMemory(0, count);
                count = 0;
                if (!rate.TryTake())
                {
                    return (Outcome.Violation, ConnectionCloseStatus.PolicyViolation, "Message rate limit exceeded.", null);
                }

                if (!IsUtf8Json(message.Span))
                {
                    return (Outcome.Violation, ConnectionCloseStatus.InvalidPayloadData, "Text frames must be UTF-8 JSON.", null);
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
                        return (Outcome.Violation, ConnectionCloseStatus.InternalServerError, "Server error.", ex);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            return (Outcome.Aborted, ConnectionCloseStatus.NormalClosure, string.Empty, ex);
        }
        finally
        {
            if (!ReferenceEquals(buffer, initialBuffer))
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    // After a server-initiated close, read and discard until the client's close frame, so that unread input never
    // turns the close into a TCP reset that would hide the close status from the client.
    private static async Task DrainUntilCloseAsync(WebSocket socket, byte[] scratch, CancellationToken requestAborted)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        deadline.CancelAfter(CloseHandshakeTimeout);
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

    private async Task UnregisterAsync(ConnectionRegistration registration)
    {
        using var timeout = new CancellationTokenSource(CloseHandshakeTimeout);
        try
        {
            await _registry.UnregisterAsync(registration, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            AspNetCoreLog.UnregisterFailed(_logger, ex, registration.ConnectionId, registration.UserId);
        }
    }

    private async Task OnDisconnectedAsync(IClientMessageHandler handler, ChatScaleConnectionContext connectionContext)
    {
        using var timeout = new CancellationTokenSource(CloseHandshakeTimeout);
        try
        {
            await handler.OnDisconnectedAsync(connectionContext, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            AspNetCoreLog.DisconnectHandlerFailed(_logger, ex, connectionContext.ConnectionId);
        }
    }

    private void Reject(HttpContext context, int statusCode, string metricReason, string reason)
    {
        AspNetCoreLog.RequestRejected(_logger, statusCode, reason);
        _metrics.Rejected(metricReason);
        if (!context.Response.HasStarted)
        {
            context.Response.StatusCode = statusCode;
        }
    }

    private static async Task WaitAsync(Task task, TimeSpan timeout)
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

    private static bool IsUtf8Json(ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8))
        {
            return false;
        }

        var reader = new Utf8JsonReader(utf8, JsonOptions);
        try
        {
            while (reader.Read())
            {
            }

            return reader.TokenType != JsonTokenType.None;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Describe(ConnectionCloseStatus status) => status switch
    {
        ConnectionCloseStatus.GoingAway => "going_away",
        ConnectionCloseStatus.InvalidMessageType => "invalid_message_type",
        ConnectionCloseStatus.InvalidPayloadData => "invalid_payload",
        ConnectionCloseStatus.PolicyViolation => "policy_violation",
        ConnectionCloseStatus.MessageTooBig => "message_too_big",
        ConnectionCloseStatus.InternalServerError => "server_error",
        _ => "closed",
    };
}
