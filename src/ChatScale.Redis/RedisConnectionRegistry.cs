using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.InteropServices;
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
/// <para><b>Layout.</b> Users are spread over 128 buckets, each with its own hash tag (so its own cluster slot). A
/// user's hash <c>connectionId -&gt; nodeId</c> lives in its bucket, next to each node's index of its connections in
/// that bucket and the index's digest (count and XOR of the connection ids). Register and unregister are one script on
/// one bucket; a lookup of many users is one pipelined <c>HVALS</c> per user, each going to the shard that owns it.
/// Node liveness is a sorted set of heartbeats scored with the Redis server's clock, copied into each process and
/// refreshed in the background (<see cref="NodeLiveness"/>), so lookups do not read it. See <c>RedisKeyspace</c>.</para>
/// <para>A node whose last heartbeat is older than <see cref="ChatScaleOptions.PresenceTimeout"/> (or that has none)
/// counts as offline in <see cref="LocateAsync"/> and <see cref="GetConnectionCountAsync"/>; a background sweep
/// deletes its entries later. Requires Redis 6.2 or later.</para>
/// <para><b>Outcomes Redis did not confirm.</b> A timeout tells nothing about whether the command ran. A register
/// that failed that way is undone (its connection is unregistered again), and an unregister that failed in any way is
/// retried, on every heartbeat of the node until Redis confirms; <see cref="BackplaneUnavailableException"/> says
/// which case the caller is in.</para>
/// <para><b>Reconciling by set.</b> The registry keeps, per node and bucket, the connections it holds and the same
/// digest Redis keeps. Each <see cref="HeartbeatAsync"/> compares the digests of every bucket the node used (one
/// pipelined <c>HMGET</c> each); a bucket that differs while no write of it was in flight is read in full and repaired:
/// lost connections registered again (Redis restarted without persistence, or swept the node while it was cut off),
/// entries the node no longer holds removed (ghosts). Equal counts of ghosts and losses cannot hide each other.</para>
/// <para><b>Ids.</b> User and node ids are stored verbatim (binary-safe strict UTF-8, so newlines, braces, emoji and
/// long ids are all safe and never collide); ids that are not valid UTF-16 are rejected with
/// <see cref="ArgumentException"/>.</para>
/// </remarks>
public sealed partial class RedisConnectionRegistry : IConnectionRegistry, IDisposable
{
    private const int BatchSize = 1000;

    private readonly ConcurrentDictionary<string, NodePresence> _nodes = new(StringComparer.Ordinal);

    // Connections whose removal from Redis is not confirmed (a failed unregister, or a register whose outcome is
    // unknown and that the caller gave up): retried on every heartbeat of their node until Redis confirms.
    private readonly ConcurrentDictionary<string, ConnectionRegistration> _unconfirmed = new(StringComparer.Ordinal);
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly RedisKeyspace _keys;
    private readonly long _timeoutMs;
    private readonly NodeLiveness _liveness;
    private readonly PresenceReader _reader;
    private readonly string _nodeId;
    private readonly BackplaneReadiness? _readiness;
    private readonly RedisMetrics _metrics;
    private readonly ILogger _logger;

    /// <summary>Creates the registry over a shared connection.</summary>
    /// <param name="multiplexer">The process's shared Redis connection.</param>
    /// <param name="options">The node options (presence timeout).</param>
    /// <param name="redisOptions">The Redis options (key prefix).</param>
    /// <param name="loggerFactory">Logging; optional.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    /// <param name="readiness">Whether this node's backplane listener receives; while it does not, heartbeats of this
    /// node (<see cref="ChatScaleOptions.NodeId"/>) stop claiming its users. Optional (always receiving).</param>
    public RedisConnectionRegistry(
        IConnectionMultiplexer multiplexer,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        BackplaneReadiness? readiness = null)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(redisOptions);
        _multiplexer = multiplexer;
        var redis = redisOptions.Value;
        _keys = new RedisKeyspace(redis.KeyPrefix, redis.UseShardedPubSub);
        _timeoutMs = (long)options.Value.PresenceTimeout.TotalMilliseconds;
        _nodeId = options.Value.NodeId;
        _readiness = readiness;
        _liveness = new NodeLiveness(
            _ => Database.ScriptEvaluateAsync(PresenceScripts.Heartbeat, [_keys.Heartbeats], [RedisValue.EmptyString]),
            options.Value.PresenceTimeout,
            options.Value.HeartbeatInterval);
        _reader = new PresenceReader(_liveness);
        _metrics = new RedisMetrics(meterFactory);
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisConnectionRegistry>() ?? NullLogger.Instance;
    }

    private IDatabase Database => _multiplexer.GetDatabase();

    /// <inheritdoc />
    /// <exception cref="BackplaneUnavailableException">Redis did not confirm the registration. If it may have run
    /// anyway (a timeout), the registry removes it again in the background; the caller treats the connection as not
    /// registered, and may call this again.</exception>
    public async ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Validate(connection);
        _unconfirmed.TryRemove(connection.ConnectionId, out _);
        var node = NodeOf(connection.NodeId);
        if (!node.HasHeartbeated)
        {
            // Other nodes must know this node before its first connection shows up, or they would judge it unknown.
            await HeartbeatOnlyAsync(connection.NodeId, node, cancellationToken).ConfigureAwait(false);
        }

        var bucket = PresenceBuckets.Of(connection.UserId);
        node.BeginRegister(bucket, connection.ConnectionId);
        var confirmed = false;
        try
        {
            await RegisterInRedisAsync(connection, bucket, "register", cancellationToken).ConfigureAwait(false);
            confirmed = true;
        }
        catch (Exception ex) when (MayHaveRun(ex))
        {
            Unconfirmed(connection, "register");
            throw;
        }
        finally
        {
            node.EndRegister(bucket, connection, confirmed);
        }
    }

    /// <inheritdoc />
    /// <exception cref="BackplaneUnavailableException">Redis did not confirm; the registry retries the removal on every
    /// heartbeat of the node until it does.</exception>
    public async ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Validate(connection);
        try
        {
            await UnregisterInRedisAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is BackplaneUnavailableException or OperationCanceledException)
        {
            Unconfirmed(connection, "unregister");
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        if (userIds.Count == 0)
        {
            return PresenceLookup.AllOffline([]);
        }

        var keys = new RedisKey[userIds.Count];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = _keys.User(userIds[i]);
        }

        var (reads, states) = await _reader.ReadAsync(Database, keys, "presence lookup", cancellationToken).ConfigureAwait(false);

        // Built as the result's own type, so a lookup makes one dictionary, not one to fill and one to return.
        var byNode = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        List<string>? offline = null;
        for (var i = 0; i < reads.Length; i++)
        {
            var online = false;
            foreach (var value in reads[i].Result)
            {
                var nodeId = (string)value!;
                if (states[nodeId] != NodeLiveness.State.Alive)
                {
                    continue;
                }

                ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(byNode, nodeId, out _);
                var users = (List<string>)(slot ??= new List<string>());

                // A user with several connections on one node is listed once for it.
                if (users.Count == 0 || !ReferenceEquals(users[^1], userIds[i]))
                {
                    users.Add(userIds[i]);
                }

                online = true;
            }

            if (!online)
            {
                (offline ??= []).Add(userIds[i]);
            }
        }

        return new PresenceLookup(byNode, offline ?? (IReadOnlyList<string>)[]);
    }

    /// <inheritdoc />
    public async ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default)
    {
        var (reads, states) = await _reader.ReadAsync(Database, [_keys.User(userId)], "connection count", cancellationToken).ConfigureAwait(false);

        var count = 0;
        foreach (var value in reads[0].Result)
        {
            if (states[(string)value!] == NodeLiveness.State.Alive)
            {
                count++;
            }
        }

        return count;
    }

    /// <inheritdoc />
    public async ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        RedisKeyspace.Utf8(nodeId, nameof(nodeId));
        var node = NodeOf(nodeId);
        await HeartbeatOnlyAsync(nodeId, node, cancellationToken).ConfigureAwait(false);
        await RetryUnconfirmedAsync(nodeId, node, cancellationToken).ConfigureAwait(false);

        // A node that does not claim its users is being swept; repairing its buckets would only fight the sweep. The
        // first heartbeat that claims again restores whatever the sweep removed.
        if (node.HasHeartbeated)
        {
            await ReconcileAsync(nodeId, node, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        RedisKeyspace.Utf8(nodeId, nameof(nodeId));
        _nodes.TryRemove(nodeId, out _);
        foreach (var pair in _unconfirmed)
        {
            if (pair.Value.NodeId == nodeId)
            {
                _unconfirmed.TryRemove(pair);
            }
        }

        // Heartbeat 0 first: every entry of the node reads offline at once, and a sweep finishes should this stop half-way.
        await Run(Database.SortedSetAddAsync(_keys.Heartbeats, nodeId, 0), "node removal", cancellationToken).ConfigureAwait(false);
        await ClearNodeAsync(nodeId, cancellationToken).ConfigureAwait(false);
        await Run(Database.ScriptEvaluateAsync(PresenceScripts.ForgetNode, [_keys.Heartbeats], [nodeId, 0]), "node removal", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Releases the registry's metrics. The shared connection is not closed.</summary>
    public void Dispose() => _metrics.Dispose();

    /// <summary>
    /// Deletes the presence entries of every node whose heartbeat is older than the presence timeout, one script per
    /// bucket and batch. Safe to run on every node at once: each batch is atomic.
    /// </summary>
    /// <returns>How many connection entries were removed.</returns>
    internal async Task<long> SweepAsync(CancellationToken cancellationToken)
    {
        var snapshot = await RefreshAfterAsync(Stopwatch.GetTimestamp(), cancellationToken).ConfigureAwait(false);
        long total = 0;
        foreach (var nodeId in _liveness.DeadNodes(snapshot))
        {
            var removed = await ClearNodeAsync(nodeId, cancellationToken).ConfigureAwait(false);
            await Run(Database.ScriptEvaluateAsync(PresenceScripts.ForgetNode, [_keys.Heartbeats], [nodeId, _timeoutMs]), "presence sweep", cancellationToken).ConfigureAwait(false);
            total += removed;
            _metrics.Swept(removed);
            if (removed > 0)
            {
                RedisLog.NodeSwept(_logger, nodeId, removed);
            }
        }

        return total;
    }

    /// <summary>How many connections of <paramref name="nodeId"/> await a removal Redis has not confirmed (for tests and diagnostics).</summary>
    internal int UnconfirmedCount(string nodeId) => _unconfirmed.Count(p => p.Value.NodeId == nodeId);

    private NodePresence NodeOf(string nodeId) => _nodes.GetOrAdd(nodeId, static _ => new NodePresence());

    private async Task HeartbeatOnlyAsync(string nodeId, NodePresence node, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();

        // A node that cannot receive (its listener is not subscribed) must not claim its users: it reads liveness
        // without marking itself alive, so other nodes count its users offline once the timeout has passed. It is still
        // recorded (as dead, if it never claimed), so that the sweep finds its entries should it die in that state.
        var claim = _readiness is not { IsReceiving: false } || nodeId != _nodeId;
        RedisValue[] args = claim ? [nodeId] : [RedisValue.EmptyString, nodeId];
        var reply = await Run(Database.ScriptEvaluateAsync(PresenceScripts.Heartbeat, [_keys.Heartbeats], args), "heartbeat", cancellationToken).ConfigureAwait(false);
        node.HasHeartbeated = claim;
        _liveness.Update(reply, started);
    }

    private Task<RedisResult> RegisterInRedisAsync(ConnectionRegistration c, int bucket, string operation, CancellationToken cancellationToken)
    {
        RedisKey[] keys = [_keys.User(bucket, c.UserId), _keys.NodeIndex(bucket, c.NodeId), _keys.NodeDigest(bucket, c.NodeId)];
        RedisValue[] args = [c.ConnectionId, c.NodeId, c.UserId, PresenceBuckets.Digest(c.ConnectionId)];
        return Run(Database.ScriptEvaluateAsync(PresenceScripts.Register, keys, args), operation, cancellationToken);
    }

    private async Task UnregisterInRedisAsync(ConnectionRegistration c, CancellationToken cancellationToken)
    {
        var bucket = PresenceBuckets.Of(c.UserId);
        var node = _nodes.TryGetValue(c.NodeId, out var n) ? n : null;
        node?.BeginUnregister(bucket, c.ConnectionId);
        try
        {
            await UnregisterScriptAsync(c, bucket, cancellationToken).ConfigureAwait(false);
            _unconfirmed.TryRemove(new KeyValuePair<string, ConnectionRegistration>(c.ConnectionId, c));
        }
        finally
        {
            node?.EndUnregister(bucket);
        }
    }

    private Task<RedisResult> UnregisterScriptAsync(ConnectionRegistration c, int bucket, CancellationToken cancellationToken)
    {
        RedisKey[] keys = [_keys.User(bucket, c.UserId), _keys.NodeIndex(bucket, c.NodeId), _keys.NodeDigest(bucket, c.NodeId)];
        RedisValue[] args = [c.ConnectionId, c.NodeId, PresenceBuckets.Digest(c.ConnectionId)];
        return Run(Database.ScriptEvaluateAsync(PresenceScripts.Unregister, keys, args), "unregister", cancellationToken);
    }

    // Removes every entry of a node, bucket by bucket (all buckets at once, pipelined), until none remain.
    private async Task<long> ClearNodeAsync(string nodeId, CancellationToken cancellationToken)
    {
        var pending = Enumerable.Range(0, PresenceBuckets.Count).ToList();
        long removed = 0;
        while (pending.Count > 0)
        {
            var batches = new Task<RedisResult>[pending.Count];
            for (var i = 0; i < pending.Count; i++)
            {
                var b = pending[i];
                RedisKey[] keys = [_keys.NodeIndex(b, nodeId), _keys.NodeDigest(b, nodeId)];
                batches[i] = Database.ScriptEvaluateAsync(PresenceScripts.RemoveBucketBatch, keys, [nodeId, _keys.UserKeyPrefix(b), BatchSize]);
            }

            await Run(Task.WhenAll(batches), "node removal", cancellationToken).ConfigureAwait(false);
            var next = new List<int>();
            for (var i = 0; i < pending.Count; i++)
            {
                var result = (RedisResult[])batches[i].Result!;
                removed += (long)result[0];
                if ((long)result[1] > 0)
                {
                    next.Add(pending[i]);
                }
            }

            pending = next;
        }

        return removed;
    }

    private Task<NodeLiveness.Snapshot> RefreshAfterAsync(long timestamp, CancellationToken cancellationToken)
        => Run(_liveness.RefreshAsync(timestamp, cancellationToken), "node liveness refresh", CancellationToken.None);

    private static Task<T> Run<T>(Task<T> command, string operation, CancellationToken cancellationToken)
        => RedisFailures.RunAsync(command, operation, cancellationToken);

    private static void Execute(IBatch batch, Task?[] commands, Task? also, string operation)
        => RedisFailures.Execute(batch, commands, also, operation);

    private static bool MayHaveRun(Exception ex)
        => ex is OperationCanceledException || (ex is BackplaneUnavailableException { InnerException: { } inner } && RedisFailures.MayHaveRun(inner));

    private void Unconfirmed(ConnectionRegistration connection, string operation)
    {
        _unconfirmed[connection.ConnectionId] = connection;
        _metrics.Unconfirmed();
        RedisLog.RemovalUnconfirmed(_logger, operation, connection.ConnectionId, connection.NodeId);
    }

    private static void Validate(ConnectionRegistration connection)
    {
        ArgumentException.ThrowIfNullOrEmpty(connection.ConnectionId, nameof(connection));
        RedisKeyspace.Utf8(connection.UserId, nameof(connection));
        RedisKeyspace.Utf8(connection.NodeId, nameof(connection));
    }
}
