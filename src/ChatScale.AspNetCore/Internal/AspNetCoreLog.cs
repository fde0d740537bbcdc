using ChatScale.Connections;
using Microsoft.Extensions.Logging;

namespace ChatScale.AspNetCore.Internal;

/// <summary>Every log message of ChatScale.AspNetCore, with stable event ids (3xxx).</summary>
internal static partial class AspNetCoreLog
{
    [LoggerMessage(3001, LogLevel.Debug, "WebSocket request rejected with {StatusCode}: {Reason}")]
    public static partial void RequestRejected(ILogger logger, int statusCode, string reason);

    [LoggerMessage(3002, LogLevel.Information, "WebSocket request from origin {Origin} rejected with 403: not in ChatScale:Endpoint:AllowedOrigins (empty means same host only).")]
    public static partial void OriginRejected(ILogger logger, string origin);

    [LoggerMessage(3003, LogLevel.Warning, "WebSocket request of an authenticated user rejected with 401: IUserIdResolver found no user id (the default reads the NameIdentifier claim, then 'sub').")]
    public static partial void NoUserId(ILogger logger);

    [LoggerMessage(3011, LogLevel.Warning, "WebSocket request rejected with 403: the user id ({Length} chars) is longer than 1,024 UTF-8 bytes or not well-formed UTF-16, so ChatScale could never deliver to it.")]
    public static partial void UserIdUnusable(ILogger logger, int length);

    [LoggerMessage(3004, LogLevel.Error, "Registering presence of connection {ConnectionId} of user {UserId} failed; the request gets 503.")]
    public static partial void RegisterFailed(ILogger logger, Exception exception, string connectionId, string userId);

    [LoggerMessage(3005, LogLevel.Debug, "WebSocket connection {ConnectionId} of user {UserId} accepted.")]
    public static partial void Accepted(ILogger logger, string connectionId, string userId);

    [LoggerMessage(3006, LogLevel.Information, "Closing connection {ConnectionId} of user {UserId} with {Status}: {Reason}")]
    public static partial void ClosingConnection(ILogger logger, string connectionId, string userId, ConnectionCloseStatus status, string reason);

    [LoggerMessage(3007, LogLevel.Error, "The client message handler failed on connection {ConnectionId} of user {UserId}; the connection is closed with 1011.")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string connectionId, string userId);

    [LoggerMessage(3008, LogLevel.Debug, "Connection {ConnectionId} ended without a close handshake.")]
    public static partial void ConnectionAborted(ILogger logger, Exception? exception, string connectionId);

    [LoggerMessage(3009, LogLevel.Warning, "Unregistering presence of connection {ConnectionId} of user {UserId} failed; it stays listed until this node leaves or stops heartbeating.")]
    public static partial void UnregisterFailed(ILogger logger, Exception exception, string connectionId, string userId);

    [LoggerMessage(3010, LogLevel.Error, "The client message handler's OnDisconnectedAsync failed on connection {ConnectionId}.")]
    public static partial void DisconnectHandlerFailed(ILogger logger, Exception exception, string connectionId);

    [LoggerMessage(3012, LogLevel.Warning, "ChatScale:Endpoint:MaxConnections ({Cap}) leaves no room under the process's open-file limit ({Limit}) for what it already holds: past the limit the node cannot accept any socket. Lower the cap or raise the limit (ulimit -n).")]
    public static partial void NodeCapAboveFileLimit(ILogger logger, int cap, long limit);

    [LoggerMessage(3014, LogLevel.Information, "WebSocket node cap {Cap} connections (open-file limit {Limit}, {Open} open at start; ChatScale:Endpoint:MaxConnections sets it).")]
    public static partial void NodeCap(ILogger logger, int cap, long limit, int open);

    [LoggerMessage(3013, LogLevel.Information, "Closing connection {ConnectionId} of user {UserId} with 1008: its authentication expired at {ExpiresAt}.")]
    public static partial void TokenExpired(ILogger logger, string connectionId, string userId, DateTimeOffset expiresAt);

    [LoggerMessage(3101, LogLevel.Warning, "Presence heartbeat of node {NodeId} failed; other nodes will see this node's users offline if it keeps failing for longer than ChatScale:PresenceTimeout.")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, string nodeId);

    [LoggerMessage(3102, LogLevel.Information, "Node {NodeId} shutting down: closing {Count} connections with 1001 (drain timeout {DrainTimeout}).")]
    public static partial void ShutdownClosing(ILogger logger, string nodeId, int count, TimeSpan drainTimeout);

    [LoggerMessage(3103, LogLevel.Information, "Node {NodeId} left presence.")]
    public static partial void NodeRemoved(ILogger logger, string nodeId);

    [LoggerMessage(3104, LogLevel.Warning, "Removing node {NodeId} from presence failed; its connections count as offline once ChatScale:PresenceTimeout passes without a heartbeat.")]
    public static partial void RemoveNodeFailed(ILogger logger, Exception exception, string nodeId);

    [LoggerMessage(3105, LogLevel.Warning, "Closing connections of node {NodeId} did not finish before the host's shutdown deadline.")]
    public static partial void ShutdownCloseTimedOut(ILogger logger, string nodeId);
}
