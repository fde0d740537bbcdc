using ChatScale.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// This node's side of Redis groups: it follows its connections (through <see cref="GroupAwareConnectionRegistry"/>),
/// loads their users' groups, applies the joins and leaves announced by any node, and acknowledges them.
/// </summary>
/// <remarks>
/// <para>A user's groups are read (one <c>SMEMBERS</c>) when their first connection registers here and forgotten when
/// their last one leaves; changes announced for the user while that read is in flight are kept and applied after it
/// (<see cref="LocalGroupTable"/>), so a leave racing the first connect cannot be undone by a reply read before it.
/// A group's channel is subscribed while it has a local recipient (<see cref="GroupSubscriptions"/>), so a publish
/// reaches exactly the nodes hosting one, with one <c>PUBLISH</c> whatever the group's size.</para>
/// <para>Joins and leaves are announced on one changes channel; the node hosting the user applies them (subscribing or
/// unsubscribing at once) and acknowledges on the announcer's ack channel (<see cref="GroupChangeAcks"/>), so a join
/// returns only once the user's nodes will deliver the group's next message.</para>
/// </remarks>
internal sealed class GroupNode : IHostedService, IAsyncDisposable
{
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly RedisKeyspace _keys;
    private readonly string _nodeId;
    private readonly ILogger _logger;
    private readonly LocalGroupTable _table;
    private readonly GroupSubscriptions _subscriptions;
    private readonly GroupChangeAcks _acks = new();
    private readonly CancellationTokenSource _stopping = new();
    private ChannelMessageQueue? _changesQueue;
    private ChannelMessageQueue? _acksQueue;
    private Task _starting = Task.CompletedTask;
    private readonly Lock _disposeGate = new();
    private Task? _disposing;

    public GroupNode(
        IConnectionMultiplexer multiplexer,
        LocalConnections connections,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        ILoggerFactory? loggerFactory = null)
    {
        _multiplexer = multiplexer;
        _keys = new RedisKeyspace(redisOptions.Value.KeyPrefix, redisOptions.Value.UseShardedPubSub);
        _nodeId = options.Value.NodeId;
        _logger = (ILogger?)loggerFactory?.CreateLogger<GroupNode>() ?? NullLogger.Instance;
        _table = new LocalGroupTable(connections);
        _subscriptions = new GroupSubscriptions(multiplexer, _keys, _table, connections, options.Value.MaxPayloadBytes, _nodeId, _logger);
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

    /// <summary>Ends the subscriptions; at the host's shutdown deadline it stops waiting for a Redis that does not answer.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await DisposeAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            GroupLog.StopTimedOut(_logger, _nodeId); // the unsubscribes go on; they end with the connection at the latest
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_disposeGate)
        {
            _disposing ??= DisposeCoreAsync();
            return new ValueTask(_disposing);
        }
    }

    private async Task DisposeCoreAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _starting.ConfigureAwait(false);
        await Task.WhenAll(
            _subscriptions.UnsubscribeAllAsync(),
            RedisFailures.UnsubscribeQuietlyAsync([_changesQueue, _acksQueue])).ConfigureAwait(false);
        (_changesQueue, _acksQueue) = (null, null);
        _subscriptions.Dispose();
        _stopping.Dispose();
    }

    /// <summary>
    /// A connection of this node is about to register in presence: from now on, membership changes announced for its
    /// user are kept (and applied once the user's groups are loaded) instead of being missed. Idempotent.
    /// </summary>
    public void ConnectionOpening(ConnectionRegistration connection) => _table.ConnectionOpening(connection.ConnectionId, connection.UserId);

    /// <summary>
    /// The connection is registered in presence: the user's first registered connection here loads their groups (one
    /// <c>SMEMBERS</c>, read after the registration so a join that presence did not route here is in it) and
    /// subscribes; later ones wait for that. Returns once the group's next message will reach the connection.
    /// </summary>
    public async ValueTask ConnectionRegisteredAsync(ConnectionRegistration connection, CancellationToken cancellationToken)
    {
        var user = _table.BeginLoad(connection.ConnectionId, connection.UserId, out var loading);
        if (user is not null)
        {
            await LoadAsync(connection.UserId, user, cancellationToken).ConfigureAwait(false);
        }
        else if (loading is not null)
        {
            await loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The connection left this node (or never registered): its own groups end, and after the user's last one their groups are forgotten here. Idempotent.</summary>
    public async ValueTask ConnectionClosedAsync(ConnectionRegistration connection)
        => await _subscriptions.ReconcileAsync(_table.ConnectionClosed(connection.ConnectionId)).ConfigureAwait(false);

    /// <summary>Adds one registered connection of this node to a group until it closes (connection-scoped membership).</summary>
    public async ValueTask<bool> AddConnectionAsync(string groupId, string connectionId)
    {
        if (!_table.AddConnection(groupId, connectionId))
        {
            return false;
        }

        await _subscriptions.ReconcileAsync([groupId]).ConfigureAwait(false);
        return true;
    }

    /// <summary>Removes a connection added by <see cref="AddConnectionAsync"/>.</summary>
    public async ValueTask<bool> RemoveConnectionAsync(string groupId, string connectionId)
    {
        if (!_table.RemoveConnection(groupId, connectionId))
        {
            return false;
        }

        await _subscriptions.ReconcileAsync([groupId]).ConfigureAwait(false);
        return true;
    }

    /// <summary>Waits for acknowledgements of <paramref name="changeId"/> from each of <paramref name="nodes"/>.</summary>
    public GroupChangeAcks.Waiter ExpectAcks(Guid changeId, IEnumerable<string> nodes) => _acks.Expect(changeId, nodes);

    public void ForgetAcks(Guid changeId) => _acks.Forget(changeId);

    private async Task SubscribeControlChannelsAsync()
    {
        var subscriber = _multiplexer.GetSubscriber();
        _changesQueue ??= await subscriber.SubscribeAsync(_keys.GroupChangesChannel).ConfigureAwait(false);
        _changesQueue.OnMessage(OnChangeAsync);
        _acksQueue ??= await subscriber.SubscribeAsync(_keys.GroupAckChannel(_nodeId)).ConfigureAwait(false);
        _acksQueue.OnMessage(m => _acks.Received((byte[]?)m.Message));
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

    // Reads the user's groups, applies them and the changes kept meanwhile, subscribes, and only then acknowledges
    // those changes: their announcers return once this node will deliver accordingly.
    private async Task LoadAsync(string userId, LocalGroupTable.User user, CancellationToken cancellationToken)
    {
        RedisValue[] groups;
        try
        {
            groups = await _multiplexer.GetDatabase().SetMembersAsync(_keys.UserGroups(userId)).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _table.LoadFailed(user, ex);
            throw;
        }

        var (changed, kept) = _table.CompleteLoad(userId, user, groups);
        try
        {
            await _subscriptions.ReconcileAsync(changed).ConfigureAwait(false);
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

        switch (_table.Apply(change))
        {
            case LocalGroupTable.ChangeOutcome.NotHosted:
                return; // nothing to do, nothing to acknowledge
            case LocalGroupTable.ChangeOutcome.Kept:
                // The user's groups are being read: a reply read before this change would undo it; applied after.
                GroupLog.ChangeKept(_logger, change.ChangeId, change.GroupId, _nodeId);
                return;
            case LocalGroupTable.ChangeOutcome.Changed:
                try
                {
                    await _subscriptions.ReconcileAsync([change.GroupId]).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
                {
                    GroupLog.UpdateFailed(_logger, ex, _nodeId);
                }

                break;
            case LocalGroupTable.ChangeOutcome.Unchanged:
                break;
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
}
