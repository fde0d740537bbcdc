using System.Diagnostics.Metrics;
using ChatScale.Connections;
using ChatScale.Groups;

namespace ChatScale.InMemory;

/// <summary>
/// The single-node <see cref="IGroupManager"/>: membership in memory (lost when the process stops), publishing
/// straight to <see cref="LocalConnections"/>.
/// </summary>
/// <remarks>
/// Each group keeps an immutable snapshot of its members, replaced on every change, so a publish delivers to the
/// snapshot without a lock and without copying the member list (only a publish with an excluded user builds a
/// filtered list).
/// </remarks>
public sealed class InMemoryGroupManager : IGroupManager, IDisposable
{
    private readonly LocalConnections _connections;
    private readonly GroupMetrics _metrics;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Group> _groups = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _groupsOfUser = new(StringComparer.Ordinal);

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

            group.Snapshot = null;
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

            group.Snapshot = null;
            if (group.Members.Count == 0)
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
        var members = Snapshot(groupId);
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
        var members = Snapshot(groupId);
        var recipients = members;
        if (exceptUserId is not null && Array.IndexOf(members, exceptUserId) >= 0)
        {
            recipients = Array.FindAll(members, m => !string.Equals(m, exceptUserId, StringComparison.Ordinal));
        }

        var queued = recipients.Length == 0 ? 0 : _connections.Deliver(recipients, payload);
        _metrics.Published();
        return ValueTask.FromResult(new PublishResult(Guid.CreateVersion7(), queued > 0 ? 1 : 0, []));
    }

    /// <inheritdoc />
    public void Dispose() => _metrics.Dispose();

    // The group's members as an immutable array, rebuilt only after a change: read without copying.
    private string[] Snapshot(string groupId)
    {
        lock (_gate)
        {
            return _groups.TryGetValue(groupId, out var group) ? group.Snapshot ??= [.. group.Members] : [];
        }
    }

    private sealed class Group
    {
        public SortedSet<string> Members { get; } = new(StringComparer.Ordinal);

        public string[]? Snapshot { get; set; }
    }
}
