namespace ChatScale;

/// <summary>One open connection as presence knows it.</summary>
/// <param name="ConnectionId">Unique id of the connection (unique across nodes).</param>
/// <param name="UserId">The authenticated user the connection belongs to.</param>
/// <param name="NodeId">The node that holds the socket.</param>
public readonly record struct ConnectionRegistration(string ConnectionId, string UserId, string NodeId);
