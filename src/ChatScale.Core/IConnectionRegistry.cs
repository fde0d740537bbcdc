namespace ChatScale;

/// <summary>
/// Presence: which users are connected, and on which nodes. The source of truth for targeted routing and for
/// "who is online".
/// </summary>
/// <remarks>
/// <para><b>Consistency.</b> A registration is visible to every node once <see cref="RegisterAsync"/> has returned;
/// an unregistration once <see cref="UnregisterAsync"/> has returned. A node that stops heartbeating (a crash) has its
/// connections reported offline once <see cref="ChatScaleOptions.PresenceTimeout"/> has passed since its last
/// heartbeat, even before its entries are swept.</para>
/// <para><b>Threading.</b> Implementations are thread-safe singletons. Every method may be called concurrently.</para>
/// </remarks>
public interface IConnectionRegistry
{
    /// <summary>Records that <paramref name="connection"/> is open. Idempotent for the same connection id.</summary>
    /// <param name="connection">The connection, its user and its node.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default);

    /// <summary>Records that <paramref name="connection"/> closed. Idempotent; unknown connections are ignored.</summary>
    /// <param name="connection">The connection, its user and its node.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default);

    /// <summary>Finds, in one round-trip, which nodes host each of <paramref name="userIds"/> and who is offline.</summary>
    /// <param name="userIds">The users to look up.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The users grouped by hosting node, and the offline users.</returns>
    ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default);

    /// <summary>Counts the live connections of one user across all nodes.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The number of connections on live nodes; 0 when offline.</returns>
    ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>Marks <paramref name="nodeId"/> alive now. Called periodically by the host.</summary>
    /// <param name="nodeId">This node's id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default);

    /// <summary>Removes every connection of <paramref name="nodeId"/> and its heartbeat (graceful shutdown).</summary>
    /// <param name="nodeId">The node leaving.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default);
}
