using System.Diagnostics.Metrics;
using ChatScale.Connections;
using ChatScale.Groups;

namespace ChatScale.InMemory;

/// <summary>
/// The single-node <see cref="IGroupManager"/>: membership in memory (lost when the process stops), publishing
/// straight to <see cref="LocalConnections"/>.
/// </summary>
/// <remarks>
/// Each group keeps an immutable snapshot of its recipients (<see cref="GroupRecipients"/>), replaced on every change,
/// so a publish delivers to the snapshot without a lock and without copying the member list (only a publish with an
/// excluded user builds a filtered list). Connection-scoped members are dropped when their connection completes.
/// </remarks>
public sealed class InMemoryGroupManager : IGroupManager, IDisposable
{
    private readonly LocalConnections _connections;
    private readonly GroupMetrics _metrics;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Group> _groups = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _groupsOfUser = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _groupsOfConnection = new(StringComparer.Ordinal);

    /// <summary>Creates the manager over this node's connections.</summary>
    /// <param name="connections">The local fan-out engine.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    public InMemoryGroupManager(LocalConnections connections, IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(connections);
        _connections = connections;
        _metrics = new GroupMetrics(meterFactory);
    }

    /// <inheritdoc />
    public ValueTask<bool> AddToGroupAsync(string groupId, string userId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        GroupIds.Check(userId, nameof(userId));
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group))
            {
                _groups[groupId] = group = new Group();
            }

            if (!group.Members.Add(userId))
            {
                return ValueTask.FromResult(false);
            }

            group.Recipients = null;
            if (!_groupsOfUser.TryGetValue(userId, out var groups))
            {
                _groupsOfUser[userId] = groups = new HashSet<string>(StringComparer.Ordinal);
            }

            groups.Add(groupId);
        }

        _metrics.MembershipChanged();
        return ValueTask.FromResult(true);
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveFromGroupAsync(string groupId, string userId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        GroupIds.Check(userId, nameof(userId));
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group) || !group.Members.Remove(userId))
            {
                return ValueTask.FromResult(false);
            }

            group.Recipients = null;
            if (group.IsEmpty)
            {
                _groups.Remove(groupId);
            }

            if (_groupsOfUser.TryGetValue(userId, out var groups) && groups.Remove(groupId) && groups.Count == 0)
            {
                _groupsOfUser.Remove(userId);
            }
        }

        _metrics.MembershipChanged();
        return ValueTask.FromResult(true);
    }

    /// <inheritdoc />
    public ValueTask<GroupMembersPage> GetMembersAsync(string groupId, string? cursor = null, int count = 100, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group))
            {
                return ValueTask.FromResult(new GroupMembersPage([], null));
            }

            // The cursor is the last member returned: members are ordered by ordinal comparison, so a member present
            // for the whole scan is returned exactly once even while others join or leave.
            if (cursor is not null && string.CompareOrdinal(cursor, group.Members.Max) >= 0)
            {
                return ValueTask.FromResult(new GroupMembersPage([], null));
            }

            var view = cursor is null ? group.Members : group.Members.GetViewBetween(cursor, group.Members.Max!);
            var page = new List<string>(Math.Min(count, view.Count));
            foreach (var member in view)
            {
                if (cursor is not null && string.CompareOrdinal(member, cursor) <= 0)
                {
                    continue;
                }

                page.Add(member);
                if (page.Count == count)
                {
                    break;
                }
            }

            var last = page.Count == count && string.CompareOrdinal(page[^1], group.Members.Max) < 0 ? page[^1] : null;
            return ValueTask.FromResult(new GroupMembersPage(page, last));
        }
    }

    /// <inheritdoc />
    public ValueTask<long> CountMembersAsync(string groupId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            return ValueTask.FromResult(_groups.TryGetValue(groupId, out var group) ? (long)group.Members.Count : 0L);
        }
    }

    /// <inheritdoc />
    public ValueTask<long> CountOnlineMembersAsync(string groupId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        cancellationToken.ThrowIfCancellationRequested();
        var members = Recipients(groupId).Users;
        var online = 0L;
        foreach (var member in members)
        {
            if (_connections.IsConnected(member))
            {
                online++;
            }
        }

        return ValueTask.FromResult(online);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<string>> GetGroupsAsync(string userId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(userId, nameof(userId));
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            return ValueTask.FromResult<IReadOnlyList<string>>(_groupsOfUser.TryGetValue(userId, out var groups) ? [.. groups] : []);
        }
    }

    /// <inheritdoc />
    public ValueTask<PublishResult> PublishToGroupAsync(string groupId, ReadOnlyMemory<byte> payload, string? exceptUserId = null, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        cancellationToken.ThrowIfCancellationRequested();
        var queued = Recipients(groupId).Deliver(_connections, payload, exceptUserId);
        _metrics.Published();
        return ValueTask.FromResult(new PublishResult(Guid.CreateVersion7(), queued > 0 ? 1 : 0, []));
    }

    /// <inheritdoc />
    public ValueTask<bool> AddConnectionToGroupAsync(string groupId, string connectionId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        cancellationToken.ThrowIfCancellationRequested();
        if (!_connections.TryGetConnection(connectionId, out var connection))
        {
            return ValueTask.FromResult(false);
        }

        bool first;
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group))
            {
                _groups[groupId] = group = new Group();
            }

            if (!group.Connections.TryAdd(connectionId, connection))
            {
                return ValueTask.FromResult(false);
            }

            group.Recipients = null;
            first = !_groupsOfConnection.TryGetValue(connectionId, out var groups);
            if (first)
            {
                _groupsOfConnection[connectionId] = groups = new HashSet<string>(StringComparer.Ordinal);
            }

            groups!.Add(groupId);
        }

        if (first)
        {
            // Runs at once if the connection already closed; the cleanup cannot throw.
            _ = connection.Completion.ContinueWith(
                static (_, state) =>
                {
                    var (manager, id) = ((InMemoryGroupManager, string))state!;
                    manager.DropConnection(id);
                },
                (this, connectionId),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        return ValueTask.FromResult(true);
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveConnectionFromGroupAsync(string groupId, string connectionId, CancellationToken cancellationToken = default)
    {
        GroupIds.Check(groupId, nameof(groupId));
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            if (!RemoveConnection(groupId, connectionId))
            {
                return ValueTask.FromResult(false);
            }

            if (_groupsOfConnection.TryGetValue(connectionId, out var groups) && groups.Remove(groupId) && groups.Count == 0)
            {
                _groupsOfConnection.Remove(connectionId);
            }
        }

        return ValueTask.FromResult(true);
    }

    /// <inheritdoc />
    public void Dispose() => _metrics.Dispose();

    // How many connections are in a group on their own (for tests: zero once they all closed).
    internal int ConnectionsTracked
    {
        get
        {
            lock (_gate)
            {
                return _groupsOfConnection.Count;
            }
        }
    }

    // The group's recipients, rebuilt only after a change: read without copying.
    private GroupRecipients Recipients(string groupId)
    {
        lock (_gate)
        {
            return _groups.TryGetValue(groupId, out var group) ? group.Recipients ??= GroupRecipients.Create(group.Members, group.Connections.Values) : GroupRecipients.Empty;
        }
    }

    // The connection closed: it leaves every group it was added to on its own.
    private void DropConnection(string connectionId)
    {
        lock (_gate)
        {
            if (_groupsOfConnection.Remove(connectionId, out var groups))
            {
                foreach (var groupId in groups)
                {
                    RemoveConnection(groupId, connectionId);
                }
            }
        }
    }

    // Call under _gate.
    private bool RemoveConnection(string groupId, string connectionId)
    {
        if (!_groups.TryGetValue(groupId, out var group) || !group.Connections.Remove(connectionId))
        {
            return false;
        }

        group.Recipients = null;
        if (group.IsEmpty)
        {
            _groups.Remove(groupId);
        }

        return true;
    }

    private sealed class Group
    {
        public SortedSet<string> Members { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, ClientConnection> Connections { get; } = new(StringComparer.Ordinal);

        public GroupRecipients? Recipients { get; set; }

        public bool IsEmpty => Members.Count == 0 && Connections.Count == 0;
    }
}
