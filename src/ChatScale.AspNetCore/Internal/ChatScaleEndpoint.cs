using System.Net.WebSockets;
using ChatScale.Backplane;
using ChatScale.Connections;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The request delegate behind <c>MapChatScale</c>: authenticate, check the origin, join the local fan-out engine and
/// presence, upgrade, then hand the socket to <see cref="ClientSession"/> until the connection ends, and leave on
/// every exit path.
/// </summary>
internal sealed class ChatScaleEndpoint
{
    // How long a closing side waits for the other's close frame before it drops the socket.
    internal static readonly TimeSpan CloseHandshakeTimeout = TimeSpan.FromSeconds(5);

    private readonly LocalConnections _connections;
    private readonly IConnectionRegistry _registry;
    private readonly IUserIdResolver _userIds;
    private readonly ChatScaleNodeState _state;
    private readonly AspNetCoreMetrics _metrics;
    private readonly ILogger _logger;
    private readonly OriginPolicy _origins;
    private readonly ConnectionAdmission _admission;
    private readonly ChatScaleEndpointOptions _endpointOptions;
    private readonly TimeProvider _time;
    private readonly WebSocketAcceptContext _acceptContext;
    private readonly ClientSession _session;
    private readonly string _nodeId;

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
        _nodeId = options.Value.NodeId;
        var endpoint = endpointOptions.Value;
        _endpointOptions = endpoint;
        _admission = admission;
        _time = timeProvider ?? TimeProvider.System;
        _origins = new OriginPolicy(endpoint.AllowedOrigins);
        _acceptContext = new WebSocketAcceptContext
        {
            KeepAliveInterval = endpoint.KeepAliveInterval,
            KeepAliveTimeout = endpoint.KeepAliveTimeout == TimeSpan.Zero ? Timeout.InfiniteTimeSpan : endpoint.KeepAliveTimeout,
        };
        _session = new ClientSession(options.Value, endpoint, metrics, logger, _time);
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

            (socket, var writer) = await WebSocketUpgrade.AcceptAsync(context, _acceptContext).ConfigureAwait(false);
            transport.Attach(socket, writer);
            admitted.Upgraded();
            using var expiry = TokenExpiry.CloseWhenExpired(connection, expiresAt, _time, _logger);
            AspNetCoreLog.Accepted(_logger, connection.ConnectionId, userId);
            connectionContext = new ChatScaleConnectionContext(connection, context, _nodeId);
            handler = context.RequestServices.GetService<IClientMessageHandler>();
            _metrics.Closed(await _session.RunAsync(context, socket, connection, connectionContext, handler).ConfigureAwait(false));
        }
        catch (Exception ex) when (context.RequestAborted.IsCancellationRequested || ex is WebSocketException or IOException)
        {
            // The client went away during the handshake.
            AspNetCoreLog.ConnectionAborted(_logger, ex, connection.ConnectionId);
        }
        finally
        {
            connection.Abort();
            if (socket is null)
            {
                transport.Abandon(); // a close that waits for the upgrade has no socket to close
            }

            await ClientSession.WaitAsync(connection.Completion, CloseHandshakeTimeout).ConfigureAwait(false);
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
}
