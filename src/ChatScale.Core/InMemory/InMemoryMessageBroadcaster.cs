using ChatScale.Connections;

namespace ChatScale.InMemory;

/// <summary>
/// The single-node <see cref="IMessageBroadcaster"/>: hands the payload straight to <see cref="LocalConnections"/>.
/// Publishing completes synchronously; a recipient with no connection on this node is reported offline.
/// </summary>
public sealed class InMemoryMessageBroadcaster : IMessageBroadcaster
{
    private readonly LocalConnections _connections;

    /// <summary>Creates the broadcaster over this node's connections.</summary>
    /// <param name="connections">The local fan-out engine.</param>
    public InMemoryMessageBroadcaster(LocalConnections connections)
    {
        ArgumentNullException.ThrowIfNull(connections);
        _connections = connections;
    }

    /// <inheritdoc />
    public ValueTask<PublishResult> PublishAsync(IReadOnlyList<string> userIds, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        cancellationToken.ThrowIfCancellationRequested();
        List<string>? offline = null;
        for (var i = 0; i < userIds.Count; i++)
        {
            if (!_connections.IsConnected(userIds[i]))
            {
                (offline ??= []).Add(userIds[i]);
            }
        }

        var queued = _connections.Deliver(userIds, payload);
        return ValueTask.FromResult(new PublishResult(Guid.CreateVersion7(), queued > 0 ? 1 : 0, offline ?? (IReadOnlyList<string>)[]));
    }

    /// <inheritdoc />
    public ValueTask<Guid> PublishToAllAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _connections.DeliverToAll(payload);
        return ValueTask.FromResult(Guid.CreateVersion7());
    }
}
