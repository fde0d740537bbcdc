using Microsoft.Extensions.Options;

namespace ChatScale.InMemory;

/// <summary>
/// Presence held in this process's memory: the single-node default. It follows the same contract as the Redis
/// registry, including node liveness: a node that has heartbeated and then stopped for longer than
/// <see cref="ChatScaleOptions.PresenceTimeout"/> has its connections reported offline.
/// </summary>
public sealed class InMemoryConnectionRegistry : IConnectionRegistry
{
    private readonly Dictionary<string, Dictionary<string, string>> _connectionsByUser = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _heartbeats = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;

    /// <summary>Creates the registry.</summary>
    /// <param name="options">The node options (presence timeout).</param>
    /// <param name="timeProvider">The clock; defaults to the system clock.</param>
    public InMemoryConnectionRegistry(IOptions<ChatScaleOptions> options, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _timeout = options.Value.PresenceTimeout;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <inheritdoc />
    public ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Validate(connection);
        lock (_gate)
        {
            if (!_connectionsByUser.TryGetValue(connection.UserId, out var connections))
            {
                _connectionsByUser[connection.UserId] = connections = new Dictionary<string, string>(StringComparer.Ordinal);
            }

            connections[connection.ConnectionId] = connection.NodeId;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Validate(connection);
        lock (_gate)
        {
            if (_connectionsByUser.TryGetValue(connection.UserId, out var connections)
                && connections.Remove(connection.ConnectionId)
                && connections.Count == 0)
            {
                _connectionsByUser.Remove(connection.UserId);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        var byNode = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var offline = new List<string>();
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            for (var i = 0; i < userIds.Count; i++)
            {
                var user = userIds[i];
                var online = false;
                if (_connectionsByUser.TryGetValue(user, out var connections))
                {
                    foreach (var node in connections.Values)
                    {
                        if (!IsAlive(node, now))
                        {
                            continue;
                        }

                        if (!byNode.TryGetValue(node, out var users))
                        {
                            byNode[node] = users = [];
                        }

                        // A user with several connections on one node is listed once for it.
                        if (users.Count == 0 || !ReferenceEquals(users[^1], user))
                        {
                            users.Add(user);
                        }

                        online = true;
                    }
                }

                if (!online)
                {
                    offline.Add(user);
                }
            }
        }

        var result = new Dictionary<string, IReadOnlyList<string>>(byNode.Count, StringComparer.Ordinal);
        foreach (var pair in byNode)
        {
            result[pair.Key] = pair.Value;
        }

        return ValueTask.FromResult(new PresenceLookup(result, offline));
    }

    /// <inheritdoc />
    public ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var now = _time.GetUtcNow();
        var count = 0;
        lock (_gate)
        {
            if (_connectionsByUser.TryGetValue(userId, out var connections))
            {
                foreach (var node in connections.Values)
                {
                    if (IsAlive(node, now))
                    {
                        count++;
                    }
                }
            }
        }

        return ValueTask.FromResult(count);
    }

    /// <inheritdoc />
    public ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(nodeId);
        lock (_gate)
        {
            _heartbeats[nodeId] = _time.GetUtcNow();
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(nodeId);
        lock (_gate)
        {
            _heartbeats.Remove(nodeId);
            List<string>? emptied = null;
            foreach (var pair in _connectionsByUser)
            {
                var connections = pair.Value;
                List<string>? gone = null;
                foreach (var c in connections)
                {
                    if (c.Value == nodeId)
                    {
                        (gone ??= []).Add(c.Key);
                    }
                }

                if (gone is not null)
                {
                    foreach (var id in gone)
                    {
                        connections.Remove(id);
                    }

                    if (connections.Count == 0)
                    {
                        (emptied ??= []).Add(pair.Key);
                    }
                }
            }

            if (emptied is not null)
            {
                foreach (var user in emptied)
                {
                    _connectionsByUser.Remove(user);
                }
            }
        }

        return ValueTask.CompletedTask;
    }

    // A node that never heartbeated is this process itself (no heartbeat service runs in a bare single-node setup).
    private bool IsAlive(string nodeId, DateTimeOffset now)
        => !_heartbeats.TryGetValue(nodeId, out var last) || now - last <= _timeout;

    private static void Validate(ConnectionRegistration connection)
    {
        ArgumentException.ThrowIfNullOrEmpty(connection.ConnectionId, nameof(connection));
        ArgumentException.ThrowIfNullOrEmpty(connection.UserId, nameof(connection));
        ArgumentException.ThrowIfNullOrEmpty(connection.NodeId, nameof(connection));
    }
}
