using ChatScale.Connections;
using ChatScale.Groups;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Who is in which group on this node, under one lock: the users connected here (their connections, their groups, and
/// the changes announced while their groups are being read), the connections added to groups on their own, and each
/// group's local members, recipients and channel subscription. Bookkeeping only: it never calls Redis.
/// </summary>
internal sealed class LocalGroupTable(LocalConnections connections)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, User> _users = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Connection> _connections = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Group> _groups = new(StringComparer.Ordinal);

    /// <summary>What <see cref="Apply"/> did with a change.</summary>
    public enum ChangeOutcome
    {
        /// <summary>The user has no connection here: nothing to do or acknowledge.</summary>
        NotHosted,

        /// <summary>The user's groups are being read: kept, applied and acknowledged after the read.</summary>
        Kept,

        /// <summary>Applied; the group's local members did not change.</summary>
        Unchanged,

        /// <summary>Applied; the group's local members changed.</summary>
        Changed,
    }

    /// <summary>A connection of this node is about to register: from now on, changes for its user are kept. Idempotent.</summary>
    public void ConnectionOpening(string connectionId, string userId)
    {
        lock (_gate)
        {
            if (!_connections.TryAdd(connectionId, new Connection(userId)))
            {
                return;
            }

            if (!_users.TryGetValue(userId, out var user))
            {
                _users[userId] = user = new User();
            }

            user.Connections.Add(connectionId);
        }
    }

    /// <summary>
    /// The connection registered. Returns the user when this caller must read their groups (then
    /// <see cref="CompleteLoad"/> or <see cref="LoadFailed"/>); otherwise <paramref name="loading"/> is the load another
    /// connection runs, or <see langword="null"/> when this one closed meanwhile.
    /// </summary>
    public User? BeginLoad(string connectionId, string userId, out Task? loading)
    {
        lock (_gate)
        {
            loading = null;
            if (!_users.TryGetValue(userId, out var user) || !user.Connections.Contains(connectionId))
            {
                return null;
            }

            if (user.LoadStarted)
            {
                loading = user.Loaded.Task; // this attempt's: completed (or failed) by the load running now
                return null;
            }

            user.LoadStarted = true;
            return user;
        }
    }

    /// <summary>The read failed: the user's next registered connection tries again; those waiting fail with this one.</summary>
    public void LoadFailed(User user, Exception exception)
    {
        TaskCompletionSource failed;
        lock (_gate)
        {
            user.LoadStarted = false;
            failed = user.Loaded;
            user.Loaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        failed.TrySetException(exception);
    }

    /// <summary>
    /// Applies the groups read for the user, then the changes kept during the read, in order (a leave that raced the
    /// read wins over the membership it returned). Returns the groups whose members changed and the kept changes, to
    /// acknowledge once subscribed. A user gone meanwhile changes nothing, but their kept changes are still returned.
    /// </summary>
    public (List<string> Changed, List<GroupChange> Kept) CompleteLoad(string userId, User user, RedisValue[] groups)
    {
        var changed = new List<string>(groups.Length);
        lock (_gate)
        {
            var kept = user.Pending ?? [];
            user.Pending = null;
            if (_users.TryGetValue(userId, out var current) && ReferenceEquals(current, user))
            {
                foreach (var value in groups)
                {
                    var groupId = (string)value!;
                    if (AddMember(user, groupId, userId))
                    {
                        changed.Add(groupId);
                    }
                }

                foreach (var change in kept)
                {
                    if (ApplyTo(user, change))
                    {
                        changed.Add(change.GroupId);
                    }
                }
            }

            return (changed, kept);
        }
    }

    /// <summary>Applies an announced join or leave to the user, if they are connected here.</summary>
    public ChangeOutcome Apply(GroupChange change)
    {
        lock (_gate)
        {
            if (!_users.TryGetValue(change.UserId, out var user))
            {
                return ChangeOutcome.NotHosted;
            }

            if (user.Pending is not null)
            {
                user.Pending.Add(change);
                return ChangeOutcome.Kept;
            }

            return ApplyTo(user, change) ? ChangeOutcome.Changed : ChangeOutcome.Unchanged;
        }
    }

    /// <summary>The connection left (or never registered). Returns the groups whose local recipients changed. Idempotent.</summary>
    public List<string> ConnectionClosed(string connectionId)
    {
        var changed = new List<string>();
        lock (_gate)
        {
            if (!_connections.Remove(connectionId, out var connection))
            {
                return changed;
            }

            // Its connection-scoped groups end with it.
            foreach (var groupId in connection.Groups)
            {
                if (_groups.TryGetValue(groupId, out var group) && group.Connections.Remove(connectionId))
                {
                    group.Recipients = null;
                    changed.Add(groupId);
                }
            }

            if (_users.TryGetValue(connection.UserId, out var user) && user.Connections.Remove(connectionId) && user.Connections.Count == 0)
            {
                // A load still running finds the user gone and acknowledges the changes it kept.
                _users.Remove(connection.UserId);
                foreach (var groupId in user.Groups)
                {
                    if (RemoveMember(groupId, connection.UserId))
                    {
                        changed.Add(groupId);
                    }
                }
            }
        }

        return changed;
    }

    /// <summary>Adds a registered, open connection of this node to a group on its own.</summary>
    public bool AddConnection(string groupId, string connectionId)
    {
        lock (_gate)
        {
            if (!_connections.TryGetValue(connectionId, out var connection) || !connections.TryGetConnection(connectionId, out var open))
            {
                return false; // Not registered here, or closing.
            }

            if (!_groups.TryGetValue(groupId, out var group))
            {
                _groups[groupId] = group = new Group();
            }

            if (!group.Connections.TryAdd(connectionId, open))
            {
                return false;
            }

            group.Recipients = null;
            connection.Groups.Add(groupId);
            return true;
        }
    }

    /// <summary>Removes a connection added by <see cref="AddConnection"/>.</summary>
    public bool RemoveConnection(string groupId, string connectionId)
    {
        lock (_gate)
        {
            if (!_connections.TryGetValue(connectionId, out var connection) || !connection.Groups.Remove(groupId)
                || !_groups.TryGetValue(groupId, out var group) || !group.Connections.Remove(connectionId))
            {
                return false;
            }

            group.Recipients = null;
            return true;
        }
    }

    /// <summary>The group's recipients here (rebuilt only after a change), or <see langword="null"/> when it has none.</summary>
    public GroupRecipients? Recipients(string groupId)
    {
        lock (_gate)
        {
            return _groups.TryGetValue(groupId, out var group) ? group.Recipients ??= GroupRecipients.Create(group.Members, group.Connections.Values) : null;
        }
    }

    /// <summary>
    /// Whether the group should be subscribed (it has local recipients), its current subscription, and how many local
    /// recipients it has. A group with neither is forgotten. Returns <see langword="false"/> for an unknown group.
    /// </summary>
    public bool Subscription(string groupId, out bool wanted, out ChannelMessageQueue? queue, out int recipients)
    {
        lock (_gate)
        {
            wanted = false;
            queue = null;
            recipients = 0;
            if (!_groups.TryGetValue(groupId, out var group))
            {
                return false;
            }

            recipients = group.Members.Count + group.Connections.Count;
            wanted = recipients > 0;
            queue = group.Queue;
            if (!wanted && queue is null)
            {
                _groups.Remove(groupId);
            }

            return true;
        }
    }

    /// <summary>Records the group's new subscription.</summary>
    public void Subscribed(string groupId, ChannelMessageQueue queue)
    {
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group))
            {
                _groups[groupId] = group = new Group();
            }

            group.Queue = queue;
        }
    }

    /// <summary>Records that the group is no longer subscribed, and forgets it if it has no recipient.</summary>
    public void Unsubscribed(string groupId)
    {
        lock (_gate)
        {
            if (_groups.TryGetValue(groupId, out var group))
            {
                group.Queue = null;
                if (group.IsEmpty)
                {
                    _groups.Remove(groupId);
                }
            }
        }
    }

    /// <summary>Takes every group subscription (at shutdown).</summary>
    public List<ChannelMessageQueue> TakeSubscriptions()
    {
        var queues = new List<ChannelMessageQueue>();
        lock (_gate)
        {
            foreach (var group in _groups.Values)
            {
                if (group.Queue is not null)
                {
                    queues.Add(group.Queue);
                    group.Queue = null;
                }
            }
        }

        return queues;
    }

    // Call under _gate. Each returns whether the group's local members changed.
    private bool ApplyTo(User user, GroupChange change)
    {
        if (change.Joined)
        {
            return AddMember(user, change.GroupId, change.UserId);
        }

        user.Groups.Remove(change.GroupId);
        return RemoveMember(change.GroupId, change.UserId);
    }

    private bool AddMember(User user, string groupId, string userId)
    {
        if (!_groups.TryGetValue(groupId, out var group))
        {
            _groups[groupId] = group = new Group();
        }

        if (!group.Members.Add(userId))
        {
            return false;
        }

        group.Recipients = null;
        user.Groups.Add(groupId);
        return true;
    }

    private bool RemoveMember(string groupId, string userId)
    {
        if (!_groups.TryGetValue(groupId, out var group) || !group.Members.Remove(userId))
        {
            return false;
        }

        group.Recipients = null;
        return true;
    }

    /// <summary>A user with at least one connection on this node.</summary>
    internal sealed class User
    {
        public HashSet<string> Connections { get; } = new(StringComparer.Ordinal);

        public HashSet<string> Groups { get; } = new(StringComparer.Ordinal);

        // Changes announced while the user's groups are read; null once they are applied.
        public List<GroupChange>? Pending { get; set; } = [];

        public bool LoadStarted { get; set; }

        public TaskCompletionSource Loaded { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class Connection(string userId)
    {
        public string UserId { get; } = userId;

        // The groups this connection was added to on its own.
        public HashSet<string> Groups { get; } = new(StringComparer.Ordinal);
    }

    private sealed class Group
    {
        public HashSet<string> Members { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, ClientConnection> Connections { get; } = new(StringComparer.Ordinal);

        public GroupRecipients? Recipients { get; set; }

        public ChannelMessageQueue? Queue { get; set; }

        public bool IsEmpty => Members.Count == 0 && Connections.Count == 0;
    }
}
