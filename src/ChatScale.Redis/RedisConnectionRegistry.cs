using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ChatScale.Redis.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis;

/// <summary>
/// Presence in Redis, shared by every node: which users are connected, and on which nodes.
/// </summary>
/// <remarks>
/// <para>Each user has a hash <c>connectionId -&gt; nodeId</c>; each node a hash <c>connectionId -&gt; userId</c> (so
/// its entries can be swept); node liveness is a sorted set of heartbeats scored with the Redis server's clock.
/// Register and unregister update both hashes atomically in one Lua script; <see cref="RegisterAsync"/> also heartbeats
/// the node, so a node that just started never looks dead.</para>
/// <para>A node whose last heartbeat is older than <see cref="ChatScaleOptions.PresenceTimeout"/> (or that has none)
/// counts as offline at once in <see cref="LocateAsync"/> and <see cref="GetConnectionCountAsync"/>; a background sweep
/// deletes its entries later. Requires Redis 6.2 or later.</para>
/// <para><b>Restoring lost presence.</b> The registry remembers the connections it registered, per node. Each
/// <see cref="HeartbeatAsync"/> also returns how many of the node's connections Redis holds; when Redis holds fewer
/// (it restarted without persistence, or swept the node while it was cut off for longer than the timeout), the
/// registry registers them again and then removes any that closed meanwhile. So a live node's users are back online
/// within one heartbeat interval of Redis coming back.</para>
/// <para><b>Redis Cluster.</b> Every presence key carries the hash tag <c>{KeyPrefix}</c>, so all of presence lives in
/// one hash slot: the atomic multi-key scripts (and the one-round-trip lookup of many users) never fail with CROSSSLOT,
/// at the price of keeping presence on one shard. Presence is small (one hash field per connection plus one per node);
/// the heavy traffic is pub/sub, whose channels are not hash-tagged, so sharded pub/sub spreads them over the shards.</para>
/// <para><b>Ids.</b> User and node ids are stored verbatim (binary-safe strict UTF-8, so newlines, braces, emoji and
/// long ids are all safe and never collide); ids that are not valid UTF-16 are rejected with
/// <see cref="ArgumentException"/>.</para>
/// <para>Failures to reach Redis surface as <see cref="BackplaneUnavailableException"/>.</para>
/// </remarks>
public sealed class RedisConnectionRegistry : IConnectionRegistry, IDisposable
{
    private const int SweepBatchSize = 1000;
    private const int MaxSweepBatchesPerPass = 1000;

    private const int RestoreBatchSize = 500;

    // What this process registered, by node: the copy presence is restored from when Redis lost it.
    private readonly ConcurrentDictionary<string, NodeRegistrations> _registered = new(StringComparer.Ordinal);
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly RedisKeyspace _keys;
    private readonly long _timeoutMs;
    private readonly RedisMetrics _metrics;
    private readonly ILogger _logger;

    /// <summary>Creates the registry over a shared connection.</summary>
    /// <param name="multiplexer">The process's shared Redis connection.</param>
    /// <param name="options">The node options (presence timeout).</param>
    /// <param name="redisOptions">The Redis options (key prefix).</param>
    /// <param name="loggerFactory">Logging; optional.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    public RedisConnectionRegistry(
        IConnectionMultiplexer multiplexer,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(redisOptions);
        _multiplexer = multiplexer;
        var redis = redisOptions.Value;
        _keys = new RedisKeyspace(redis.KeyPrefix, redis.UseShardedPubSub);
        _timeoutMs = (long)options.Value.PresenceTimeout.TotalMilliseconds;
        _metrics = new RedisMetrics(meterFactory);
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisConnectionRegistry>() ?? NullLogger.Instance;
    }

    private IDatabase Database => _multiplexer.GetDatabase();

    /// <inheritdoc />
    public async ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Validate(connection);
        RedisKey[] keys = [_keys.User(connection.UserId), _keys.Node(connection.NodeId), _keys.Heartbeats];
        RedisValue[] args = [connection.ConnectionId, connection.NodeId, connection.UserId];
        await EvaluateAsync(PresenceScripts.Register, keys, args, "register", cancellationToken).ConfigureAwait(false);
        _registered.GetOrAdd(connection.NodeId, static _ => new()).Add(connection);
    }

    /// <inheritdoc />
    public async ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Validate(connection);
        if (_registered.TryGetValue(connection.NodeId, out var registered))
        {
            registered.Remove(connection.ConnectionId);
        }

        await UnregisterInRedisAsync(connection, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        if (userIds.Count == 0)
        {
            return PresenceLookup.AllOffline([]);
        }

        var keys = new RedisKey[userIds.Count + 1];
        keys[0] = _keys.Heartbeats;
        for (var i = 0; i < userIds.Count; i++)
        {
            keys[i + 1] = _keys.User(userIds[i]);
        }

        var result = await EvaluateAsync(PresenceScripts.Locate, keys, [_timeoutMs], "presence lookup", cancellationToken).ConfigureAwait(false);
        var perUser = (RedisResult[])result!;
        var byNode = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? offline = null;
        for (var i = 0; i < userIds.Count; i++)
        {
            var nodes = (RedisResult[])perUser[i]!;
            if (nodes.Length == 0)
            {
                (offline ??= []).Add(userIds[i]);
                continue;
            }

            foreach (var node in nodes)
            {
                var nodeId = (string)node!;
                if (!byNode.TryGetValue(nodeId, out var users))
                {
                    byNode[nodeId] = users = [];
                }

                users.Add(userIds[i]);
            }
        }

        var usersByNode = new Dictionary<string, IReadOnlyList<string>>(byNode.Count, StringComparer.Ordinal);
        foreach (var pair in byNode)
        {
            usersByNode[pair.Key] = pair.Value;
        }

        return new PresenceLookup(usersByNode, offline ?? (IReadOnlyList<string>)[]);
    }

    /// <inheritdoc />
    public async ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default)
    {
        RedisKey[] keys = [_keys.Heartbeats, _keys.User(userId)];
        var result = await EvaluateAsync(PresenceScripts.Count, keys, [_timeoutMs], "connection count", cancellationToken).ConfigureAwait(false);
        return (int)result;
    }

    /// <inheritdoc />
    public async ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        RedisKeyspace.Utf8(nodeId, nameof(nodeId));
        _registered.TryGetValue(nodeId, out var registered);
        var addedBefore = registered?.Added ?? 0;
        var held = (long)await EvaluateAsync(PresenceScripts.Heartbeat, [_keys.Heartbeats, _keys.Node(nodeId)], [nodeId], "heartbeat", cancellationToken).ConfigureAwait(false);

        // Redis must hold at least every connection added before the heartbeat and not removed by the time it
        // answered (Added is counted after Redis has a connection, Removed before Redis drops one). Fewer means Redis
        // lost presence; registrations and unregistrations racing the heartbeat can never make it look so.
        if (registered is not null && held < addedBefore - registered.Removed)
        {
            await RestoreAsync(nodeId, registered, held, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        _registered.TryRemove(nodeId, out _);
        RedisKey[] keys = [_keys.Heartbeats, _keys.Node(nodeId)];
        RedisValue[] args = [nodeId, _keys.UserKeyPrefix, SweepBatchSize];
        while ((long)await EvaluateAsync(PresenceScripts.RemoveNodeBatch, keys, args, "node removal", cancellationToken).ConfigureAwait(false) > 0)
        {
        }
    }

    /// <summary>Releases the registry's metrics. The shared connection is not closed.</summary>
    public void Dispose() => _metrics.Dispose();

    /// <summary>
    /// Deletes the presence entries of every node whose heartbeat is older than the presence timeout, in batches.
    /// Safe to run on every node at once: each batch is atomic.
    /// </summary>
    /// <returns>How many connection entries were removed.</returns>
    internal async Task<long> SweepAsync(CancellationToken cancellationToken)
    {
        RedisKey[] keys = [_keys.Heartbeats];
        RedisValue[] args = [_timeoutMs, _keys.NodeKeyPrefix, _keys.UserKeyPrefix, SweepBatchSize];
        long total = 0;
        for (var batch = 0; batch < MaxSweepBatchesPerPass; batch++)
        {
            var result = (RedisResult[])(await EvaluateAsync(PresenceScripts.SweepBatch, keys, args, "presence sweep", cancellationToken).ConfigureAwait(false))!;
            if (result.Length == 0)
            {
                break;
            }

            var removed = (long)result[1];
            total += removed;
            _metrics.Swept(removed);
            if (removed > 0)
            {
                RedisLog.NodeSwept(_logger, (string)result[0]!, removed);
            }
        }

        return total;
    }

    // Redis holds fewer of the node's connections than it registered: re-register them all (idempotent), then take
    // back any that closed while this ran, so a connection that unregistered meanwhile is never left behind.
    private async Task RestoreAsync(string nodeId, NodeRegistrations registered, long held, CancellationToken cancellationToken)
    {
        var snapshot = registered.Snapshot();
        RedisLog.PresenceRestored(_logger, nodeId, held, snapshot.Length);
        for (var start = 0; start < snapshot.Length; start += RestoreBatchSize)
        {
            var batch = snapshot.AsMemory(start, Math.Min(RestoreBatchSize, snapshot.Length - start));
            var writes = new Task[batch.Length];
            for (var i = 0; i < batch.Length; i++)
            {
                var c = batch.Span[i];
                RedisKey[] keys = [_keys.User(c.UserId), _keys.Node(c.NodeId), _keys.Heartbeats];
                writes[i] = EvaluateAsync(PresenceScripts.Register, keys, [c.ConnectionId, c.NodeId, c.UserId], "presence restore", cancellationToken);
            }

            await Task.WhenAll(writes).ConfigureAwait(false);
        }

        foreach (var c in snapshot)
        {
            if (!registered.Contains(c.ConnectionId))
            {
                await UnregisterInRedisAsync(c, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task UnregisterInRedisAsync(ConnectionRegistration connection, CancellationToken cancellationToken)
    {
        RedisKey[] keys = [_keys.User(connection.UserId), _keys.Node(connection.NodeId)];
        RedisValue[] args = [connection.ConnectionId, connection.NodeId];
        await EvaluateAsync(PresenceScripts.Unregister, keys, args, "unregister", cancellationToken).ConfigureAwait(false);
    }

    private async Task<RedisResult> EvaluateAsync(string script, RedisKey[] keys, RedisValue[] args, string operation, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            return await RedisFailures.WaitAsync(Database.ScriptEvaluateAsync(script, keys, args), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
        {
            throw RedisFailures.Unavailable(operation, ex);
        }
    }

    private static void Validate(ConnectionRegistration connection)
    {
        ArgumentException.ThrowIfNullOrEmpty(connection.ConnectionId, nameof(connection));
        RedisKeyspace.Utf8(connection.UserId, nameof(connection));
        RedisKeyspace.Utf8(connection.NodeId, nameof(connection));
    }

    /// <summary>
    /// One node's connections as this process registered them, with two monotonic counters: <see cref="Added"/> counts
    /// new registrations once Redis holds them, <see cref="Removed"/> counts unregistrations before Redis drops them.
    /// So at any moment Redis holds at least <c>Added - Removed</c> of them unless it lost presence.
    /// </summary>
    private sealed class NodeRegistrations
    {
        private readonly ConcurrentDictionary<string, ConnectionRegistration> _connections = new(StringComparer.Ordinal);
        private long _added;
        private long _removed;

        public long Added => Interlocked.Read(ref _added);

        public long Removed => Interlocked.Read(ref _removed);

        public void Add(ConnectionRegistration connection)
        {
            if (_connections.TryAdd(connection.ConnectionId, connection))
            {
                Interlocked.Increment(ref _added);
            }
        }

        public void Remove(string connectionId)
        {
            if (_connections.TryRemove(connectionId, out _))
            {
                Interlocked.Increment(ref _removed);
            }
        }

        public bool Contains(string connectionId) => _connections.ContainsKey(connectionId);

        public ConnectionRegistration[] Snapshot() => [.. _connections.Values];
    }
}
