namespace ChatScale.Redis.Internal;

/// <summary>
/// Wraps the presence registry so <see cref="GroupNode"/> follows this node's connections (no public event exposes
/// them): it learns of a connection before presence registers it (so a membership change routed here meanwhile is
/// kept, not missed), then loads the user's groups; and it learns when the connection unregisters. Every call is
/// forwarded unchanged; a register returns only once the user's groups are subscribed here, so the group's next
/// message reaches the new connection. A register that fails is rolled back here too.
/// </summary>
internal sealed class GroupAwareConnectionRegistry(IConnectionRegistry inner, GroupNode groups) : IConnectionRegistry
{
    public async ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        if (!IsLocal(connection))
        {
            await inner.RegisterAsync(connection, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Known to the group node before presence routes a change here, so no change slips between the two.
        groups.ConnectionOpening(connection);
        try
        {
            await inner.RegisterAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await groups.ConnectionClosedAsync(connection).ConfigureAwait(false);
            throw;
        }

        await groups.ConnectionRegisteredAsync(connection, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        try
        {
            await inner.UnregisterAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (IsLocal(connection))
            {
                await groups.ConnectionClosedAsync(connection).ConfigureAwait(false);
            }
        }
    }

    public ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default)
        => inner.LocateAsync(userIds, cancellationToken);

    public ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default)
        => inner.GetConnectionCountAsync(userId, cancellationToken);

    public ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default)
        => inner.HeartbeatAsync(nodeId, cancellationToken);

    public ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default)
        => inner.RemoveNodeAsync(nodeId, cancellationToken);

    private bool IsLocal(ConnectionRegistration connection) => string.Equals(connection.NodeId, groups.NodeId, StringComparison.Ordinal);
}
