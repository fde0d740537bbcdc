using System.Security.Claims;
using ChatScale.Connections;
using Microsoft.AspNetCore.Http;

namespace ChatScale.AspNetCore;

/// <summary>One open WebSocket connection, as <see cref="IClientMessageHandler"/> sees it.</summary>
public sealed class ChatScaleConnectionContext
{
    private readonly ClientConnection _connection;

    internal ChatScaleConnectionContext(ClientConnection connection, HttpContext httpContext, string nodeId)
    {
        _connection = connection;
        HttpContext = httpContext;
        NodeId = nodeId;
    }

    /// <summary>The connection's id, unique across nodes (the id presence knows it by).</summary>
    public string ConnectionId => _connection.ConnectionId;

    /// <summary>The authenticated user the connection belongs to.</summary>
    public string UserId => _connection.UserId;

    /// <summary>The node holding the socket.</summary>
    public string NodeId { get; }

    /// <summary>The authenticated principal of the upgrade request.</summary>
    public ClaimsPrincipal User => HttpContext.User;

    /// <summary>The upgrade request. Valid until the connection closes.</summary>
    public HttpContext HttpContext { get; }

    /// <summary>
    /// Queues <paramref name="frame"/> for this connection only (for example a reply), behind frames already queued.
    /// To reach a user on every node, use <see cref="IMessageBroadcaster"/> instead.
    /// </summary>
    /// <param name="frame">UTF-8 JSON; shared, not copied, so it must not be modified afterwards.</param>
    /// <returns><see langword="false"/> when the connection is closing or its send queue is full (close policy).</returns>
    public bool TrySend(ReadOnlyMemory<byte> frame) => _connection.TryEnqueue(frame);
}
