using System.Collections.Concurrent;
using ChatScale.Backplane;
using ChatScale.Connections;
using ChatScale.Groups;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// This node's side of Redis groups: which groups its connected users belong to, and one subscription per such group.
/// </summary>
/// <remarks>
/// <para>A user's groups are read (one <c>SMEMBERS</c>) when their first connection registers here and forgotten when
/// their last one leaves; changes announced for the user while that read is in flight are kept and applied after it,
/// so a leave racing the first connect cannot be undone by a reply read before it. A group's channel is subscribed while at least one local user is a member, so a publish
/// reaches exactly the nodes hosting members, with one <c>PUBLISH</c> whatever the group's size. Joins and leaves
/// are announced on one changes channel; the node hosting the user applies them (subscribing or unsubscribing at
/// once) and acknowledges on the announcer's ack channel, so a join returns only once the user's nodes will deliver
/// the group's next message.</para>
/// <para>Each group channel is read by one <see cref="ChannelMessageQueue"/> handler, sequentially: one publisher's
/// messages to a group arrive in order. Subscription changes are serialized by one semaphore.</para>
/// </remarks>
internal sealed class GroupNode : IHostedService, IAsyncDisposable
{
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly LocalConnections _connections;
    private readonly RedisKeyspace _keys;
    private readonly string _nodeId;
    private readonly int _maxPayloadBytes;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _subscriptions = new(1, 1);
    private readonly Dictionary<string, LocalUser> _users = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LocalConnection> _localConnections = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LocalGroup> _groups = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Guid, AckWaiter> _waiters = new();
    private ChannelMessageQueue? _changes;
    private ChannelMessageQueue? _acks;
    private readonly CancellationTokenSource _stopping = new();
    private Task _starting = Task.CompletedTask;
    private int _disposed;

    public GroupNode(
        IConnectionMultiplexer multiplexer,
        LocalConnections connections,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        ILoggerFactory? loggerFactory = null)
    {
        _multiplexer = multiplexer;
        _connections = connections;
        _keys = new RedisKeyspace(redisOptions.Value.KeyPrefix, redisOptions.Value.UseShardedPubSub);
        _nodeId = options.Value.NodeId;
        _maxPayloadBytes = options.Value.MaxPayloadBytes;
        _logger = (ILogger?)loggerFactory?.CreateLogger<GroupNode>() ?? NullLogger.Instance;
    }

    public RedisKeyspace Keys => _keys;

    public string NodeId => _nodeId;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await SubscribeControlChannelsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
        {
            // Redis down at boot must not stop the host (as for the backplane listener): keep trying in the background.
            GroupLog.UpdateFailed(_logger, ex, _nodeId);
            _starting = RetrySubscribeAsync(_stopping.Token);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync().ConfigureAwait(false);

    private async Task SubscribeControlChannelsAsync()
    {
        var subscriber = _multiplexer.GetSubscriber();
        _changes ??= await subscriber.SubscribeAsync(_keys.GroupChangesChannel).ConfigureAwait(false);
        _changes.OnMessage(OnChangeAsync);
        _acks ??= await subscriber.SubscribeAsync(_keys.GroupAckChannel(_nodeId)).ConfigureAwait(false);
        _acks.OnMessage(OnAck);
    }

    private async Task RetrySubscribeAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stopping).ConfigureAwait(false);
                await SubscribeControlChannelsAsync().ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
            {
                GroupLog.UpdateFailed(_logger, ex, _nodeId);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _starting.ConfigureAwait(false);
        _stopping.Dispose();
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

        if (_changes is not null)
        {
            queues.Add(_changes);
            _changes = null;
        }

        if (_acks is not null)
        {
            queues.Add(_acks);
            _acks = null;
        }

        foreach (var queue in queues)
        {
            try
            {
                await queue.UnsubscribeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
            {
                // Redis is gone: the subscriptions die with the connection.
            }
        }
    }

    /// <summary>
    /// A connection of this node is about to register in presence: from now on, membership changes announced for its
    /// user are kept (and applied once the user's groups are loaded) instead of being missed. Idempotent.
    /// </summary>
    public void ConnectionOpening(ConnectionRegistration connection)
    {
        lock (_gate)
        {
            if (!_localConnections.TryAdd(connection.ConnectionId, new LocalConnection(connection.UserId)))
            {
                return;
            }

            if (!_users.TryGetValue(connection.UserId, out var user))
            {
                _users[connection.UserId] = user = new LocalUser();
            }

            user.Connections.Add(connection.ConnectionId);
        }
    }

    /// <summary>
    /// The connection is registered in presence: the user's first registered connection here loads their groups (one
    /// <c>SMEMBERS</c>, read after the registration so a join that presence did not route here is in it) and
    /// subscribes; later ones wait for that. Returns once the group's next message will reach the connection.
    /// </summary>
    public async ValueTask ConnectionRegisteredAsync(ConnectionRegistration connection, CancellationToken cancellationToken)
    {
        LocalUser? user;
        bool load;
        Task loaded;
        lock (_gate)
        {
            if (!_users.TryGetValue(connection.UserId, out user) || !user.Connections.Contains(connection.ConnectionId))
            {
                return; // Closed again meanwhile.
            }

            load = !user.LoadStarted;
            user.LoadStarted = true;
            loaded = user.Loaded.Task; // this attempt's: completed (or failed) by the load that runs now
        }

        if (load)
        {
            await LoadAsync(connection.UserId, user, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await loaded.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The connection left this node (or never registered): after the user's last one, forget their groups and unsubscribe from emptied ones. Idempotent.</summary>
    public async ValueTask ConnectionClosedAsync(ConnectionRegistration connection)
    {
        var changed = new List<string>();
        lock (_gate)
        {
            if (!_localConnections.Remove(connection.ConnectionId, out var local))
            {
                return;
            }

            // Its connection-scoped groups end with it.
            foreach (var groupId in local.Groups)
            {
                if (_groups.TryGetValue(groupId, out var group) && group.Connections.Remove(connection.ConnectionId))
                {
                    group.Recipients = null;
                    changed.Add(groupId);
                }
            }

            if (_users.TryGetValue(local.UserId, out var user))
            {
                user.Connections.Remove(connection.ConnectionId);
                if (user.Connections.Count == 0)
                {
                    // A load still running sees the user gone and acknowledges the changes it kept.
                    _users.Remove(local.UserId);
                    foreach (var groupId in user.Groups)
                    {
                        if (RemoveMember(groupId, local.UserId))
                        {
                            changed.Add(groupId);
                        }
                    }
                }
            }
        }

        await ReconcileAsync(changed).ConfigureAwait(false);
    }

    /// <summary>Adds one registered connection of this node to a group until it closes (connection-scoped membership).</summary>
    public async ValueTask<bool> AddConnectionAsync(string groupId, string connectionId)
    {
        lock (_gate)
        {
            if (!_localConnections.TryGetValue(connectionId, out var local) || !_connections.TryGetConnection(connectionId, out var connection))
            {
                return false; // Not registered here, or closing.
            }

            if (!_groups.TryGetValue(groupId, out var group))
            {
                _groups[groupId] = group = new LocalGroup();
            }

            if (!group.Connections.TryAdd(connectionId, connection))
            {
                return false;
            }

            group.Recipients = null;
            local.Groups.Add(groupId);
        }

        await ReconcileAsync([groupId]).ConfigureAwait(false);
        return true;
    }

    /// <summary>Removes a connection added by <see cref="AddConnectionAsync"/>.</summary>
    public async ValueTask<bool> RemoveConnectionAsync(string groupId, string connectionId)
    {
        lock (_gate)
        {
            if (!_localConnections.TryGetValue(connectionId, out var local) || !local.Groups.Remove(groupId)
                || !_groups.TryGetValue(groupId, out var group) || !group.Connections.Remove(connectionId))
            {
                return false;
            }

            group.Recipients = null;
        }

        await ReconcileAsync([groupId]).ConfigureAwait(false);
        return true;
    }

    // Reads the user's groups, applies them and then the changes announced meanwhile (in order: a leave that raced the
    // read wins over the stale membership it returned), subscribes, and only then acknowledges those changes.
    private async Task LoadAsync(string userId, LocalUser user, CancellationToken cancellationToken)
    {
        RedisValue[] groups;
        try
        {
            groups = await _multiplexer.GetDatabase().SetMembersAsync(_keys.UserGroups(userId)).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            TaskCompletionSource failed;
            lock (_gate)
            {
                // The next registered connection of the user tries again; those waiting now fail with this one.
                user.LoadStarted = false;
                failed = user.Loaded;
                user.Loaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            failed.TrySetException(ex);
            throw;
        }

        var changed = new List<string>(groups.Length);
        List<GroupChange> kept;
        lock (_gate)
        {
            kept = user.Pending ?? [];
            user.Pending = null;
            if (_users.TryGetValue(userId, out var current) && ReferenceEquals(current, user))
            {
                foreach (var value in groups)
                {
                    var groupId = (string)value!;
                    if (AddLocal(user, groupId, userId))
                    {
                        changed.Add(groupId);
                    }
                }

                foreach (var change in kept)
                {
                    if (Apply(user, change))
                    {
                        changed.Add(change.GroupId);
                    }
                }
            }
        }

        try
        {
            await ReconcileAsync(changed).ConfigureAwait(false);
        }
        finally
        {
            user.Loaded.TrySetResult();
            foreach (var change in kept)
            {
                await AcknowledgeAsync(change).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Registers interest in acknowledgements of <paramref name="changeId"/> from each of <paramref name="nodes"/>.</summary>
    public AckWaiter ExpectAcks(Guid changeId, IEnumerable<string> nodes)
    {
        var waiter = new AckWaiter(nodes);
        _waiters[changeId] = waiter;
        return waiter;
    }

    public void ForgetAcks(Guid changeId) => _waiters.TryRemove(changeId, out _);

    private async Task OnChangeAsync(ChannelMessage message)
    {
        GroupChange change;
        try
        {
            change = GroupChange.Decode(((byte[]?)message.Message) ?? []);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            GroupLog.Malformed(_logger, ex, message.Channel.ToString(), ((byte[]?)message.Message)?.Length ?? 0);
            return;
        }

        bool changed;
        lock (_gate)
        {
            if (!_users.TryGetValue(change.UserId, out var user))
            {
                return; // Not hosted here: nothing to do, nothing to acknowledge.
            }

            if (user.Pending is not null)
            {
                // The user's groups are being read: a reply read before this change would undo it; apply it after.
                user.Pending.Add(change);
                GroupLog.ChangeKept(_logger, change.ChangeId, change.GroupId, _nodeId);
                return;
            }

            changed = Apply(user, change);
        }

        try
        {
            if (changed)
            {
                await ReconcileAsync([change.GroupId]).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            GroupLog.UpdateFailed(_logger, ex, _nodeId);
        }

        await AcknowledgeAsync(change).ConfigureAwait(false);
    }

    private async Task AcknowledgeAsync(GroupChange change)
    {
        try
        {
            await _multiplexer.GetSubscriber().PublishAsync(_keys.GroupAckChannel(change.OriginNodeId), GroupChange.EncodeAck(change.ChangeId, _nodeId)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            GroupLog.UpdateFailed(_logger, ex, _nodeId);
        }
    }

    private void OnAck(ChannelMessage message)
    {
        if (GroupChange.TryDecodeAck((byte[]?)message.Message, out var changeId, out var nodeId) && _waiters.TryGetValue(changeId, out var waiter))
        {
            waiter.Acknowledge(nodeId);
        }
    }

    // Call under _gate. Returns whether the group's local member set changed.
    private bool Apply(LocalUser user, GroupChange change)
        => change.Joined ? AddLocal(user, change.GroupId, change.UserId) : RemoveLocal(user, change.GroupId, change.UserId);

    private bool AddLocal(LocalUser user, string groupId, string userId)
    {
        if (!_groups.TryGetValue(groupId, out var group))
        {
            _groups[groupId] = group = new LocalGroup();
        }

        if (!group.Members.Add(userId))
        {
            return false;
        }

        group.Recipients = null;
        user.Groups.Add(groupId);
        return true;
    }

    private bool RemoveLocal(LocalUser user, string groupId, string userId)
    {
        user.Groups.Remove(groupId);
        return RemoveMember(groupId, userId);
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

    // Brings each group's subscription in line with its local members: subscribed while it has any.
    private async Task ReconcileAsync(List<string> groupIds)
    {
        if (groupIds.Count == 0)
        {
            return;
        }

        await _subscriptions.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var groupId in groupIds)
            {
                LocalGroup? group;
                bool wanted;
                ChannelMessageQueue? queue;
                int members;
                lock (_gate)
                {
                    if (!_groups.TryGetValue(groupId, out group))
                    {
                        continue;
                    }

                    members = group.Members.Count + group.Connections.Count;
                    wanted = members > 0;
                    queue = group.Queue;
                    if (!wanted && queue is null)
                    {
                        _groups.Remove(groupId);
                    }
                }

                if (wanted && queue is null)
                {
                    var subscribed = await _multiplexer.GetSubscriber().SubscribeAsync(_keys.GroupChannel(groupId)).ConfigureAwait(false);
                    subscribed.OnMessage(m => Deliver(groupId, m));
                    lock (_gate)
                    {
                        group.Queue = subscribed;
                    }

                    GroupLog.Subscribed(_logger, _nodeId, groupId, members);
                }
                else if (!wanted && queue is not null)
                {
                    await queue.UnsubscribeAsync().ConfigureAwait(false);
                    lock (_gate)
                    {
                        group.Queue = null;
                        if (group.IsEmpty)
                        {
                            _groups.Remove(groupId);
                        }
                    }

                    GroupLog.Unsubscribed(_logger, _nodeId, groupId);
                }
            }
        }
        finally
        {
            _subscriptions.Release();
        }
    }

    private void Deliver(string groupId, ChannelMessage message)
    {
        ReadOnlyMemory<byte> data = (byte[]?)message.Message ?? [];
        BackplaneEnvelope envelope;
        try
        {
            envelope = EnvelopeCodec.Decode(data, _maxPayloadBytes);
            if (envelope.Kind != EnvelopeKind.Group || !string.Equals(envelope.Recipients[0], groupId, StringComparison.Ordinal))
            {
                throw new EnvelopeFormatException("Not a group envelope of this channel's group.");
            }
        }
        catch (EnvelopeFormatException ex)
        {
            GroupLog.Malformed(_logger, ex, message.Channel.ToString(), data.Length);
            return;
        }

        GroupRecipients recipients;
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group))
            {
                return;
            }

            recipients = group.Recipients ??= GroupRecipients.Create(group.Members, group.Connections.Values);
        }

        recipients.Deliver(_connections, envelope.Payload, envelope.RecipientCount == 2 ? envelope.Recipients[1] : null);
    }

    private sealed class LocalUser
    {
        public HashSet<string> Connections { get; } = new(StringComparer.Ordinal);

        public HashSet<string> Groups { get; } = new(StringComparer.Ordinal);

        // Changes announced while the user's groups are read; null once they are applied.
        public List<GroupChange>? Pending { get; set; } = [];

        public bool LoadStarted { get; set; }

        public TaskCompletionSource Loaded { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class LocalConnection(string userId)
    {
        public string UserId { get; } = userId;

        // The groups this connection was added to on its own.
        public HashSet<string> Groups { get; } = new(StringComparer.Ordinal);
    }

    private sealed class LocalGroup
    {
        public HashSet<string> Members { get; } = new(StringComparer.Ordinal);

        public Dictionary<string, ClientConnection> Connections { get; } = new(StringComparer.Ordinal);

        public GroupRecipients? Recipients { get; set; }

        public ChannelMessageQueue? Queue { get; set; }

        public bool IsEmpty => Members.Count == 0 && Connections.Count == 0;
    }

    /// <summary>Completes when every node expected to apply a change has acknowledged it.</summary>
    internal sealed class AckWaiter(IEnumerable<string> nodes)
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly HashSet<string> _remaining = new(nodes, StringComparer.Ordinal);

        public Task Done => _done.Task;

        public int Remaining
        {
            get
            {
                lock (_remaining)
                {
                    return _remaining.Count;
                }
            }
        }

        // An acknowledgement from a node that presence did not name (it registered the user meanwhile) is ignored.
        public void Acknowledge(string nodeId)
        {
            lock (_remaining)
            {
                if (!_remaining.Remove(nodeId) || _remaining.Count > 0)
                {
                    return;
                }
            }

            _done.TrySetResult();
        }
    }
}
