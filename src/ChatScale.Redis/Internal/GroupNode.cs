using System.Collections.Concurrent;
using ChatScale.Backplane;
using ChatScale.Connections;
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
/// their last one leaves. A group's channel is subscribed while at least one local user is a member, so a publish
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
    private readonly Dictionary<string, int> _localUsers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _groupsOfUser = new(StringComparer.Ordinal);
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

    /// <summary>The user's connection registered on this node: on the first one, load the user's groups and subscribe.</summary>
    public async ValueTask UserConnectedAsync(string userId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var count = _localUsers.GetValueOrDefault(userId);
            _localUsers[userId] = count + 1;
            if (count > 0)
            {
                return;
            }
        }

        var groups = await _multiplexer.GetDatabase().SetMembersAsync(_keys.UserGroups(userId)).WaitAsync(cancellationToken).ConfigureAwait(false);
        var changed = new List<string>(groups.Length);
        lock (_gate)
        {
            if (!_localUsers.ContainsKey(userId))
            {
                return; // Gone again before its groups arrived.
            }

            foreach (var value in groups)
            {
                var groupId = (string)value!;
                if (AddLocal(groupId, userId))
                {
                    changed.Add(groupId);
                }
            }
        }

        await ReconcileAsync(changed).ConfigureAwait(false);
    }

    /// <summary>The user's connection left this node: after the last one, forget the user's groups and unsubscribe from emptied ones.</summary>
    public async ValueTask UserDisconnectedAsync(string userId)
    {
        List<string>? changed = null;
        lock (_gate)
        {
            if (!_localUsers.TryGetValue(userId, out var count))
            {
                return;
            }

            if (count > 1)
            {
                _localUsers[userId] = count - 1;
                return;
            }

            _localUsers.Remove(userId);
            if (_groupsOfUser.Remove(userId, out var groups))
            {
                changed = [];
                foreach (var groupId in groups)
                {
                    if (RemoveMember(groupId, userId))
                    {
                        changed.Add(groupId);
                    }
                }
            }
        }

        if (changed is not null)
        {
            await ReconcileAsync(changed).ConfigureAwait(false);
        }
    }

    /// <summary>Registers interest in acknowledgements of <paramref name="changeId"/> from <paramref name="nodes"/> nodes.</summary>
    public AckWaiter ExpectAcks(Guid changeId, int nodes)
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
            if (!_localUsers.ContainsKey(change.UserId))
            {
                return; // Not hosted here: nothing to do, nothing to acknowledge.
            }

            changed = change.Joined ? AddLocal(change.GroupId, change.UserId) : RemoveLocal(change.GroupId, change.UserId);
        }

        try
        {
            if (changed)
            {
                await ReconcileAsync([change.GroupId]).ConfigureAwait(false);
            }

            await _multiplexer.GetSubscriber().PublishAsync(_keys.GroupAckChannel(change.OriginNodeId), change.ChangeId.ToByteArray()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            GroupLog.UpdateFailed(_logger, ex, _nodeId);
        }
    }

    private void OnAck(ChannelMessage message)
    {
        var bytes = (byte[]?)message.Message;
        if (bytes is { Length: 16 } && _waiters.TryGetValue(new Guid(bytes), out var waiter))
        {
            waiter.Acknowledge();
        }
    }

    // Call under _gate. Returns whether the group's local member set changed.
    private bool AddLocal(string groupId, string userId)
    {
        if (!_groups.TryGetValue(groupId, out var group))
        {
            _groups[groupId] = group = new LocalGroup();
        }

        if (!group.Members.Add(userId))
        {
            return false;
        }

        group.Snapshot = null;
        if (!_groupsOfUser.TryGetValue(userId, out var groups))
        {
            _groupsOfUser[userId] = groups = new HashSet<string>(StringComparer.Ordinal);
        }

        groups.Add(groupId);
        return true;
    }

    private bool RemoveLocal(string groupId, string userId)
    {
        if (_groupsOfUser.TryGetValue(userId, out var groups) && groups.Remove(groupId) && groups.Count == 0)
        {
            _groupsOfUser.Remove(userId);
        }

        return RemoveMember(groupId, userId);
    }

    private bool RemoveMember(string groupId, string userId)
    {
        if (!_groups.TryGetValue(groupId, out var group) || !group.Members.Remove(userId))
        {
            return false;
        }

        group.Snapshot = null;
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

                    members = group.Members.Count;
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
                        if (group.Members.Count == 0)
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

        var except = envelope.RecipientCount == 2 ? envelope.Recipients[1] : null;
        string[] members;
        lock (_gate)
        {
            if (!_groups.TryGetValue(groupId, out var group))
            {
                return;
            }

            members = group.Snapshot ??= [.. group.Members];
        }

        if (except is not null && Array.IndexOf(members, except) >= 0)
        {
            members = Array.FindAll(members, m => !string.Equals(m, except, StringComparison.Ordinal));
        }

        if (members.Length > 0)
        {
            _connections.Deliver(members, envelope.Payload);
        }
    }

    private sealed class LocalGroup
    {
        public HashSet<string> Members { get; } = new(StringComparer.Ordinal);

        public string[]? Snapshot { get; set; }

        public ChannelMessageQueue? Queue { get; set; }
    }

    /// <summary>Completes when the expected number of nodes acknowledged a change.</summary>
    internal sealed class AckWaiter(int expected)
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _remaining = expected;

        public Task Done => _done.Task;

        public int Remaining => Volatile.Read(ref _remaining);

        public void Acknowledge()
        {
            if (Interlocked.Decrement(ref _remaining) <= 0)
            {
                _done.TrySetResult();
            }
        }
    }
}
