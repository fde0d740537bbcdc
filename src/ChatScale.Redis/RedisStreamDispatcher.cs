using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Threading.Channels;
using ChatScale.Dispatching;
using ChatScale.Redis.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis;

/// <summary>
/// A durable, ordered <see cref="IBackgroundDispatcher"/> on Redis Streams, shared by every node of a deployment:
/// a job enqueued on any node runs on some node, survives node crashes and Redis restarts (with Redis persistence),
/// and jobs of one ordering key run one at a time in enqueue order across the whole cluster.
/// </summary>
/// <remarks>
/// <para><b>Delivery: at least once.</b> A job is deleted from Redis only after its handler returned (or after it was
/// dead-lettered). A node that crashes mid-job, loses its lease, or is stopped past its shutdown deadline leaves the job
/// in Redis and another node runs it again, so <b>handlers must be idempotent</b>: use
/// <see cref="JobContext.JobId"/>, which never changes for a job, to skip work already done. Attempts made by a node
/// that crashed are not counted.</para>
/// <para><b>Ordering: per key, not global.</b> A keyed job is appended (<c>XADD</c>) to one of
/// <see cref="DispatcherOptions.Partitions"/> partition streams chosen by <see cref="OrderingKeyHash"/>. Each partition
/// is worked by at most one dispatcher instance in the cluster at a time, which holds a lease (<c>SET NX PX</c>,
/// renewed with a compare-and-extend script every third of <see cref="RedisDispatcherOptions.LeaseTtl"/>) and runs
/// the partition's jobs strictly one after another. A failing keyed job is retried in place after its backoff, so the
/// jobs behind it in its partition wait and nothing overtakes it; other partitions keep going. Jobs without a key go to
/// one shared stream read through a consumer group by <see cref="DispatcherOptions.WorkerCount"/> workers per node, in
/// parallel and in no particular order.</para>
/// <para><b>Partition assignment.</b> Every instance heartbeats a membership entry that expires after the lease TTL;
/// the live instances, sorted by id, split the partitions round-robin (partition <c>p</c> belongs to member
/// <c>p mod n</c>), so they are spread evenly and rebalance when a node joins or leaves. An instance gives up a
/// partition it is no longer assigned after its current job and releases the lease; the new owner takes the lease only
/// once it is free, so one partition never has two owners. A crashed owner's lease and membership simply expire.
/// A new owner first claims (<c>XAUTOCLAIM</c>) every entry its predecessor had read but not finished and runs them in
/// stream order, then reads new entries, so the order holds across takeovers.</para>
/// <para><b>Retries.</b> Up to <see cref="DispatcherOptions.MaxAttempts"/> attempts with exponential backoff and ±20 %
/// jitter (<see cref="RetryBackoff"/>). A failing unkeyed job stays in the consumer group's pending-entry list while it
/// waits, off any worker, and is re-run by this node; if the node dies meanwhile, a live node claims the pending
/// entries of consumers whose instance left the membership and runs them. After the last attempt the job, its last
/// error, attempt count and timestamps move to a dead-letter stream atomically, where
/// <see cref="GetDeadLettersAsync"/>, <see cref="ReplayDeadLettersAsync"/> and <see cref="PurgeDeadLettersAsync"/>
/// work on it; a replayed keyed job goes back to its key's partition. A job whose type has no handler on this node,
/// or whose payload cannot be deserialized, is dead-lettered at once.</para>
/// <para><b>Redis outages.</b> <see cref="EnqueueAsync{TJob}"/> throws <see cref="BackplaneUnavailableException"/> when
/// Redis cannot be reached (after retrying for <see cref="RedisDispatcherOptions.EnqueueRetryTimeout"/>, zero by
/// default); a job is accepted only once Redis acknowledged the <c>XADD</c>. Workers back off and resume on their own.
/// Keeping accepted jobs across a Redis <i>restart</i> needs Redis persistence (AOF with <c>appendfsync always</c> for
/// no loss at all).</para>
/// <para><b>Lifecycle.</b> Nothing runs until <see cref="StartAsync"/>. <c>AddRedis()</c> registers it as the
/// <see cref="IBackgroundDispatcher"/>, and the ASP.NET Core package's <c>AddChatScale()</c> starts and stops whichever
/// dispatcher is registered with the host; a host without that package adds
/// <c>services.AddHostedService(sp =&gt; sp.GetRequiredService&lt;RedisStreamDispatcher&gt;())</c>.
/// <see cref="StopAsync"/> stops taking jobs, lets running handlers finish until the host's deadline, releases this
/// instance's partitions and leaves the membership, so the other nodes take over at once. Handlers should finish well within the lease TTL when Redis is unreachable: the lease cannot be renewed then.</para>
/// <para><b>Threading.</b> Thread-safe singleton.</para>
/// </remarks>
/// <example>
/// <code>
/// builder.Services.AddChatScale()
///     .AddRedis(o =&gt; { o.ConnectionString = "localhost:6379"; o.Dispatcher.LeaseTtl = TimeSpan.FromSeconds(10); })
///     .AddJobHandler&lt;BroadcastMessage, BroadcastMessageHandler&gt;();
///
/// // In a request: returns once Redis stored the job.
/// await dispatcher.EnqueueAsync(new BroadcastMessage(conversationId, messageId), orderingKey: conversationId);
/// </code>
/// </example>
public sealed class RedisStreamDispatcher : IBackgroundDispatcher, IHostedService, IAsyncDisposable
{
    private const int NotStarted = 0;
    private const int Running = 1;
    private const int Stopped = 2;
    private const int Disposed = 3;
    private const int ReclaimPageSize = 100;

    // Published on the wake-up channel when membership or a lease changes, so every coordinator looks at once
    // instead of at its next tick.
    private const string RebalanceMessage = "rebalance";

    private static readonly TimeSpan RedisRetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly RedisKeyspace _keys;
    private readonly IServiceScopeFactory _scopeFactory;
    private readonly FrozenDictionary<Type, JobTypeRegistration> _byType;
    private readonly FrozenDictionary<string, JobTypeRegistration> _byName;
    private readonly ILogger _logger;
    private readonly RedisDispatcherMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly string _nodeId;
    private readonly string _instanceId;
    private readonly int _workerCount;
    private readonly int _maxAttempts;
    private readonly TimeSpan _initialBackoff;
    private readonly TimeSpan _maxBackoff;
    private readonly TimeSpan _leaseTtl;
    private readonly long _leaseValidityTicks;
    private readonly TimeSpan _pollInterval;
    private readonly TimeSpan _enqueueRetryTimeout;
    private readonly int _batchSize;
    private readonly int? _maxStreamLength;

    private readonly Partition[] _partitions;
    private readonly SemaphoreSlim _workerSlots;
    private readonly Signal _sharedWake = new();
    private readonly Signal _coordinatorWake = new();
    private readonly ConcurrentDictionary<RedisValue, byte> _localShared = new();
    private readonly Channel<StreamJob> _dueRetries = Channel.CreateUnbounded<StreamJob>();
    private readonly ConcurrentDictionary<StreamJob, ITimer> _retryTimers = new();
    private readonly long[] _lags;

    // Never disposed: late callers (an enqueue racing DisposeAsync, a host token firing after StopAsync) may still read them.
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();

    private readonly Lock _stateLock = new();
    private readonly Action<RedisChannel, RedisValue> _onWake;
    private Task _coordinator = Task.CompletedTask;
    private Task[] _workers = [];
    private int _state;
    private bool _subscribed;
    private bool _joined;
    private volatile bool _abandoned;
    private long _inFlight;
    private long _lastPending;
    private long _lastDead;

    /// <summary>Creates the dispatcher. Nothing runs until <see cref="StartAsync"/>; enqueueing works at once.</summary>
    /// <param name="multiplexer">The process's shared Redis connection.</param>
    /// <param name="options">The node options: node id and <see cref="ChatScaleOptions.Dispatcher"/> (read once, here).</param>
    /// <param name="redisOptions">The Redis options: key prefix and <see cref="ChatScaleRedisOptions.Dispatcher"/>.</param>
    /// <param name="scopeFactory">Creates the DI scope each attempt's handler is resolved from.</param>
    /// <param name="registrations">The job types registered with <c>AddJobHandler&lt;TJob, THandler&gt;()</c>.</param>
    /// <param name="loggerFactory">Logging; optional.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    /// <param name="timeProvider">The clock for timestamps, leases and retry delays; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">A dispatcher option is out of range.</exception>
    public RedisStreamDispatcher(
        IConnectionMultiplexer multiplexer,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        IServiceScopeFactory scopeFactory,
        IEnumerable<JobTypeRegistration> registrations,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(redisOptions);
        ArgumentNullException.ThrowIfNull(scopeFactory);
        ArgumentNullException.ThrowIfNull(registrations);
        var core = options.Value;
        var dispatcher = core.Dispatcher
            ?? throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)} must not be null.", nameof(options));
        var redis = redisOptions.Value;
        var streams = redis.Dispatcher
            ?? throw new ArgumentException($"{ChatScaleRedisOptions.SectionName}:{nameof(ChatScaleRedisOptions.Dispatcher)} must not be null.", nameof(redisOptions));
        _workerCount = Positive(dispatcher.WorkerCount, nameof(DispatcherOptions.WorkerCount));
        var partitions = Positive(dispatcher.Partitions, nameof(DispatcherOptions.Partitions));
        _maxAttempts = Positive(dispatcher.MaxAttempts, nameof(DispatcherOptions.MaxAttempts));
        _initialBackoff = dispatcher.InitialBackoff < TimeSpan.Zero ? TimeSpan.Zero : dispatcher.InitialBackoff;
        _maxBackoff = dispatcher.MaxBackoff < _initialBackoff ? _initialBackoff : dispatcher.MaxBackoff;
        if (streams.LeaseTtl < TimeSpan.FromMilliseconds(300) || streams.PollInterval <= TimeSpan.Zero || streams.ReadBatchSize <= 0)
        {
            throw new ArgumentException(
                $"{ChatScaleRedisOptions.SectionName}:{nameof(ChatScaleRedisOptions.Dispatcher)}: LeaseTtl must be at least 300 ms, PollInterval and ReadBatchSize greater than 0.",
                nameof(redisOptions));
        }

        _multiplexer = multiplexer;
        _keys = new RedisKeyspace(redis.KeyPrefix, redis.UseShardedPubSub);
        _scopeFactory = scopeFactory;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisStreamDispatcher>() ?? NullLogger.Instance;
        _nodeId = core.NodeId;
        _instanceId = Guid.NewGuid().ToString("N");
        _leaseTtl = streams.LeaseTtl;

        // The owner stops starting jobs a fifth of the TTL before the lease would expire in Redis, measured from when
        // the renewal was sent: Redis starts its TTL later than that, so the owner always gives up first.
        _leaseValidityTicks = (long)(_leaseTtl.TotalSeconds * 0.8 * _time.TimestampFrequency);
        _pollInterval = streams.PollInterval;
        _enqueueRetryTimeout = streams.EnqueueRetryTimeout < TimeSpan.Zero ? TimeSpan.Zero : streams.EnqueueRetryTimeout;
        _batchSize = streams.ReadBatchSize;
        _maxStreamLength = streams.MaxStreamLength is { } cap ? (int)Math.Clamp(cap, 1, int.MaxValue) : null;

        var byType = new Dictionary<Type, JobTypeRegistration>();
        var byName = new Dictionary<string, JobTypeRegistration>(StringComparer.Ordinal);
        foreach (var registration in registrations)
        {
            // AddJobHandler may run twice for one type; the later registration wins, as it does for DI services.
            byType[registration.JobType] = registration;
            byName[registration.Name] = registration;
        }

        _byType = byType.ToFrozenDictionary();
        _byName = byName.ToFrozenDictionary(StringComparer.Ordinal);
        _partitions = new Partition[partitions];
        for (var i = 0; i < partitions; i++)
        {
            _partitions[i] = new Partition(i, _keys.PartitionJobs(i), _keys.PartitionLease(i));
        }

        _lags = new long[partitions + 1];
        _workerSlots = new SemaphoreSlim(_workerCount, _workerCount);
        _onWake = OnWake;
        _metrics = new RedisDispatcherMetrics(meterFactory, partitions, CachedStatistics, () => _lags);

        static int Positive(int value, string name) => value > 0
            ? value
            : throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)}:{name} must be greater than 0 (was {value}).", nameof(options));
    }

    /// <summary>This instance's id in the membership, leases and consumer names (unique per process start).</summary>
    internal string InstanceId => _instanceId;

    /// <summary>How many partitions this instance works now (for tests and diagnostics).</summary>
    internal int OwnedPartitionCount
    {
        get
        {
            var count = 0;
            foreach (var partition in _partitions)
            {
                if (partition.Loop is { IsCompleted: false })
                {
                    count++;
                }
            }

            return count;
        }
    }

    private IDatabase Database => _multiplexer.GetDatabase();

    /// <inheritdoc />
    /// <remarks>
    /// Serializes the job with its registration's System.Text.Json metadata and appends it to its partition stream (or
    /// the shared stream): one <c>XADD</c>, plus a fire-and-forget wake-up <c>PUBLISH</c>. Returns once Redis has the job.
    /// Enqueueing works before <see cref="StartAsync"/> and on nodes that never start the dispatcher.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The dispatcher was disposed.</exception>
    public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
        where TJob : notnull
    {
        ArgumentNullException.ThrowIfNull(job);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _state) == Disposed, this);
        var registration = FindRegistration(typeof(TJob), job.GetType());
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<string>(cancellationToken);
        }

        var id = Guid.CreateVersion7().ToString("N");
        var partition = orderingKey is null ? -1 : OrderingKeyHash.Lane(orderingKey, _partitions.Length);
        var stream = partition < 0 ? _keys.SharedJobs : _partitions[partition].Stream;
        var data = registration.Serialize(job);
        var enqueuedAt = _time.GetUtcNow().ToUnixTimeMilliseconds();
        NameValueEntry[] fields = orderingKey is null
            ? [new("id", id), new("type", registration.Name), new("data", data), new("attempt", 0), new("enq", enqueuedAt)]
            : [new("id", id), new("type", registration.Name), new("key", orderingKey), new("data", data), new("attempt", 0), new("enq", enqueuedAt)];
        return new ValueTask<string>(AddAsync(stream, fields, partition, id, cancellationToken));
    }

    /// <inheritdoc />
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable.</exception>
    public async ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        if (maxCount == 0)
        {
            return [];
        }

        var entries = await Redis(Database.StreamRangeAsync(_keys.DeadLetters, "-", "+", maxCount), "listing dead letters", cancellationToken).ConfigureAwait(false);
        var result = new List<DeadLetteredJob>(entries.Length);
        foreach (var entry in entries)
        {
            if (entry.IsNull)
            {
                continue;
            }

            var job = StreamJob.Parse(entry);
            result.Add(new DeadLetteredJob(
                job.JobId,
                job.TypeName,
                job.Key,
                (int)Field(entry, "attempts"),
                (string?)Field(entry, "error") ?? string.Empty,
                job.EnqueuedAt,
                DateTimeOffset.FromUnixTimeMilliseconds((long)Field(entry, "dead"))));
        }

        return result;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Each job moves atomically from the dead-letter stream back to its partition (keyed jobs, behind the jobs already
    /// queued there) or to the shared stream, keeping its id, with a fresh attempt count. Replaying all takes the jobs
    /// dead-lettered before the call, so a replayed job that fails again is not replayed twice by one call.
    /// </remarks>
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable; jobs replayed before the failure stay replayed.</exception>
    public async ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _state) == Disposed, this);
        var db = Database;
        var last = await Redis(db.StreamRangeAsync(_keys.DeadLetters, "-", "+", 1, Order.Descending), "replaying dead letters", cancellationToken).ConfigureAwait(false);
        if (last.Length == 0)
        {
            return 0;
        }

        var end = last[0].Id;
        var replayed = 0;
        RedisValue start = "-";
        while (true)
        {
            var page = await Redis(db.StreamRangeAsync(_keys.DeadLetters, start, end, ReclaimPageSize), "replaying dead letters", cancellationToken).ConfigureAwait(false);
            if (page.Length == 0)
            {
                break;
            }

            foreach (var entry in page)
            {
                var job = StreamJob.Parse(entry);
                if (jobId is not null && !string.Equals(job.JobId, jobId, StringComparison.Ordinal))
                {
                    continue;
                }

                var partition = job.Key is null ? -1 : OrderingKeyHash.Lane(job.Key, _partitions.Length);
                var target = partition < 0 ? _keys.SharedJobs : _partitions[partition].Stream;
                var moved = await Redis(db.ScriptEvaluateAsync(DispatcherScripts.Replay, [_keys.DeadLetters, target], [entry.Id]), "replaying dead letters", cancellationToken).ConfigureAwait(false);
                if ((long)moved == 1)
                {
                    replayed++;
                    Wake(partition);
                }
            }

            if (page.Length < ReclaimPageSize)
            {
                break;
            }

            start = "(" + (string)page[^1].Id!;
        }

        if (replayed > 0)
        {
            RedisLog.JobsReplayed(_logger, replayed);
        }

        return replayed;
    }

    /// <inheritdoc />
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable.</exception>
    public async ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default)
    {
        var result = await Redis(Database.ScriptEvaluateAsync(DispatcherScripts.Purge, [_keys.DeadLetters]), "purging dead letters", cancellationToken).ConfigureAwait(false);
        return (int)(long)result;
    }

    /// <inheritdoc />
    /// <remarks>
    /// <see cref="DispatcherStatistics.Pending"/> counts every unfinished job in Redis (queued, waiting for a retry, or
    /// running on another node) minus the ones running here; <see cref="DispatcherStatistics.InFlight"/> counts the
    /// handlers running on this node; <see cref="DispatcherStatistics.DeadLettered"/> the dead-letter stream's length.
    /// </remarks>
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable.</exception>
    public async ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            // Observed even if the caller stops waiting, so a late failure never goes unobserved.
            var refresh = RefreshBacklogAsync();
            RedisFailures.Observe(refresh);
            await refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw RedisFailures.Unavailable("reading the dispatcher statistics", ex);
        }

        return CachedStatistics();
    }

    /// <summary>
    /// Joins the membership and starts working: partitions assigned to this instance as their leases become free,
    /// and <see cref="DispatcherOptions.WorkerCount"/> workers on the shared stream. Does not wait for Redis: while it
    /// is unreachable, the dispatcher keeps retrying in the background.
    /// </summary>
    /// <param name="cancellationToken">Not used: starting does not wait.</param>
    /// <returns>A completed task.</returns>
    /// <exception cref="InvalidOperationException">The dispatcher was already started (a stopped one cannot be restarted).</exception>
    /// <exception cref="ObjectDisposedException">The dispatcher was disposed.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_stateLock)
        {
            ObjectDisposedException.ThrowIf(_state == Disposed, this);
            if (_state != NotStarted)
            {
                throw new InvalidOperationException("The Redis stream dispatcher was already started; it cannot be started twice or restarted after it stopped.");
            }

            // The loops outlive the caller: they must not inherit its async-locals (its Activity, say).
            using (ExecutionContext.SuppressFlow())
            {
                _coordinator = Task.Run(RunCoordinatorAsync, CancellationToken.None);
                var workers = new Task[_workerCount];
                for (var i = 0; i < workers.Length; i++)
                {
                    var consumer = ConsumerName(i);
                    workers[i] = Task.Run(() => RunSharedWorkerAsync(consumer), CancellationToken.None);
                }

                _workers = workers;
            }

            Volatile.Write(ref _state, Running);
        }

        RedisLog.DispatcherStarted(_logger, _instanceId, _nodeId, _partitions.Length, _workerCount);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops taking jobs and waits for running handlers; when <paramref name="cancellationToken"/> fires (the host's
    /// shutdown deadline) their cancellation token is signalled and this returns. Then releases the partitions whose
    /// loops have ended and leaves the membership, so other nodes take over at once. Unfinished jobs stay in Redis.
    /// </summary>
    /// <param name="cancellationToken">The host's shutdown deadline.</param>
    /// <returns>A task that completes when the dispatcher has stopped or the deadline has passed.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!BeginStop())
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        using (cancellationToken.Register(static state => ((CancellationTokenSource)state!).Cancel(), _aborting))
        {
            try
            {
                await WaitForLoopsAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Deadline passed: handlers were told to stop; a loop still running releases its lease when it ends.
            }
        }

        await LeaveAsync().ConfigureAwait(false);
        RedisLog.DispatcherStopped(_logger, _instanceId);
    }

    /// <summary>
    /// Stops like <see cref="StopAsync"/> with an expired deadline (running handlers are cancelled and their jobs stay
    /// in Redis), then releases timers, metrics and the wake-up subscription. The shared connection is not closed.
    /// </summary>
    /// <returns>A task that completes when everything is released.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) == Running)
        {
            await StopAsync(new CancellationToken(canceled: true)).ConfigureAwait(false);
        }

        lock (_stateLock)
        {
            if (_state == Disposed)
            {
                return;
            }

            Volatile.Write(ref _state, Disposed);
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _aborting.CancelAsync().ConfigureAwait(false);
        try
        {
            await WaitForLoopsAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Every loop logs and survives its own failures; disposal must not fail if one did not.
            RedisLog.DispatcherLoopFailed(_logger, ex);
        }

        await UnsubscribeAsync().ConfigureAwait(false);
        await DisposeRetryTimersAsync().ConfigureAwait(false);
        _metrics.Dispose();
        _workerSlots.Dispose();
        _sharedWake.Dispose();
        _coordinatorWake.Dispose();
        foreach (var partition in _partitions)
        {
            partition.Dispose();
        }
    }

    /// <summary>
    /// Simulates a crash, for tests: every loop and handler stops at once, nothing is acknowledged, no lease is
    /// released and the membership is not left, so other instances take over only after the lease TTL.
    /// </summary>
    internal async Task AbandonAsync()
    {
        _abandoned = true;
        if (!BeginStop())
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _aborting.CancelAsync().ConfigureAwait(false);
        await WaitForLoopsAsync().ConfigureAwait(false);
        await UnsubscribeAsync().ConfigureAwait(false);
        await DisposeRetryTimersAsync().ConfigureAwait(false);
    }

    private bool BeginStop()
    {
        lock (_stateLock)
        {
            if (_state != Running)
            {
                if (_state == NotStarted)
                {
                    Volatile.Write(ref _state, Stopped);
                }

                return false;
            }

            Volatile.Write(ref _state, Stopped);
            return true;
        }
    }

    private async Task WaitForLoopsAsync()
    {
        // The coordinator starts partition loops, so it ends first; then no new loop can appear.
        await _coordinator.ConfigureAwait(false);
        var loops = new List<Task>(_workers);
        foreach (var partition in _partitions)
        {
            if (partition.Loop is { } loop)
            {
                loops.Add(loop);
            }
        }

        await Task.WhenAll(loops).ConfigureAwait(false);
    }

    private async Task LeaveAsync()
    {
        try
        {
            await Database.ScriptEvaluateAsync(DispatcherScripts.Heartbeat, [_keys.DispatcherMembers], [_instanceId, (long)_leaseTtl.TotalMilliseconds, 1]).ConfigureAwait(false);
            Announce(RebalanceMessage);
        }
        catch (Exception ex) when (IsGone(ex))
        {
            // Our membership expires on its own after the lease TTL.
            RedisLog.CoordinationFailed(_logger, ex, _leaseTtl);
        }

        await UnsubscribeAsync().ConfigureAwait(false);
        await DisposeRetryTimersAsync().ConfigureAwait(false);
    }

    private async Task UnsubscribeAsync()
    {
        if (!_subscribed)
        {
            return;
        }

        _subscribed = false;
        try
        {
            await _multiplexer.GetSubscriber().UnsubscribeAsync(_keys.DispatcherWakeChannel, _onWake).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsGone(ex))
        {
            // The subscription dies with the connection.
        }
    }

    private async Task DisposeRetryTimersAsync()
    {
        // Jobs waiting for a retry stay in this instance's pending entries; live nodes claim them once it has left.
        foreach (var pair in _retryTimers)
        {
            if (_retryTimers.TryRemove(pair.Key, out var timer))
            {
                await timer.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private JobTypeRegistration FindRegistration(Type declaredType, Type runtimeType)
    {
        if (_byType.TryGetValue(declaredType, out var registration) || _byType.TryGetValue(runtimeType, out registration))
        {
            return registration;
        }

        throw new InvalidOperationException(
            $"No job handler is registered for job type '{runtimeType.FullName}'. Register one with AddJobHandler<TJob, THandler>() "
            + $"on the ChatScale builder, for example AddJobHandler<{runtimeType.Name}, MyHandler>(), before enqueueing it.");
    }

    private async Task<string> AddAsync(RedisKey stream, NameValueEntry[] fields, int partition, string id, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        while (true)
        {
            try
            {
                var add = _maxStreamLength is { } cap
                    ? Database.StreamAddAsync(stream, fields, maxLength: cap, useApproximateMaxLength: true)
                    : Database.StreamAddAsync(stream, fields);
                await RedisFailures.WaitAsync(add, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (Exception ex) when (IsUnavailable(ex))
            {
                var remaining = _enqueueRetryTimeout - _time.GetElapsedTime(started);
                if (remaining <= TimeSpan.Zero)
                {
                    RedisLog.EnqueueFailed(_logger, ex);
                    throw new BackplaneUnavailableException(
                        $"Redis is unreachable: job {id} was not enqueued (nothing was accepted; retry later or answer 503). "
                        + "If the failure was a timeout the job may still have been stored, and then it runs once under this id.",
                        ex);
                }

                await Task.Delay(remaining < RedisRetryDelay ? remaining : RedisRetryDelay, _time, cancellationToken).ConfigureAwait(false);
            }
        }

        Wake(partition);
        return id;
    }

    private void Wake(int partition) => Announce(partition);

    private void Announce(RedisValue message)
    {
        try
        {
            // Only a hint (workers and coordinators also poll), so losing it is fine.
            _multiplexer.GetSubscriber().Publish(_keys.DispatcherWakeChannel, message, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (IsGone(ex))
        {
        }
    }

    private void OnWake(RedisChannel channel, RedisValue message)
    {
        if (!message.TryParse(out int partition))
        {
            if (message == RebalanceMessage)
            {
                _coordinatorWake.Set();
            }

            return;
        }

        if (partition < 0)
        {
            _sharedWake.Set();
        }
        else if (partition < _partitions.Length)
        {
            _partitions[partition].Wake.Set();
        }
    }

    private string ConsumerName(int worker)
        => string.Create(CultureInfo.InvariantCulture, $"{_instanceId}:{_nodeId}:w{worker}");

    private static string InstanceOf(string consumer)
    {
        var colon = consumer.IndexOf(':', StringComparison.Ordinal);
        return colon < 0 ? consumer : consumer[..colon];
    }

    // ---------------------------------------------------------------- coordination

    private async Task RunCoordinatorAsync()
    {
        var stopping = _stopping.Token;
        var tick = _leaseTtl / 3;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await CoordinateAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                RedisLog.CoordinationFailed(_logger, ex, tick);
            }

            try
            {
                await _coordinatorWake.WaitAsync(tick, stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private async Task CoordinateAsync(CancellationToken stopping)
    {
        var db = Database;
        if (!_subscribed)
        {
            await _multiplexer.GetSubscriber().SubscribeAsync(_keys.DispatcherWakeChannel, _onWake).ConfigureAwait(false);
            _subscribed = true;
        }

        var members = (RedisValue[])(await db.ScriptEvaluateAsync(
            DispatcherScripts.Heartbeat, [_keys.DispatcherMembers], [_instanceId, (long)_leaseTtl.TotalMilliseconds, 0]).ConfigureAwait(false))!;
        var live = new string[members.Length];
        for (var i = 0; i < members.Length; i++)
        {
            live[i] = (string)members[i]!;
        }

        Array.Sort(live, StringComparer.Ordinal);
        var index = Array.IndexOf(live, _instanceId);
        if (!_joined)
        {
            // Tell the others we are here, so they hand over our share now rather than at their next tick.
            _joined = true;
            Announce(RebalanceMessage);
        }

        var leases = new List<Task>(_partitions.Length);
        foreach (var partition in _partitions)
        {
            if (partition.Loop is { IsCompleted: true })
            {
                partition.Loop = null;
            }

            var assigned = index >= 0 && partition.Index % live.Length == index;
            if (partition.Loop is not null)
            {
                // Renewed even when no longer assigned: the current job must finish under a valid lease.
                leases.Add(RenewAsync(partition));
                if (!assigned)
                {
                    partition.Yield();
                }
            }
            else if (assigned && !stopping.IsCancellationRequested)
            {
                leases.Add(AcquireAsync(partition, stopping));
            }
        }

        await Task.WhenAll(leases).ConfigureAwait(false);
        await ReclaimDeadConsumersAsync(live, stopping).ConfigureAwait(false);
        await RefreshBacklogAsync().ConfigureAwait(false);
    }

    private async Task RenewAsync(Partition partition)
    {
        var sentAt = _time.GetTimestamp();
        try
        {
            var renewed = (long)await Database.ScriptEvaluateAsync(
                DispatcherScripts.RenewLease, [partition.Lease], [_instanceId, (long)_leaseTtl.TotalMilliseconds]).ConfigureAwait(false);
            if (renewed == 1)
            {
                partition.ValidUntil = sentAt + _leaseValidityTicks;
                return;
            }

            partition.ValidUntil = 0;
            RedisLog.PartitionLeaseLost(_logger, _instanceId, partition.Index);
            partition.Yield();
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            // The lease stays valid locally until ValidUntil; the loop stops on its own if no renewal gets through.
        }
    }

    private async Task AcquireAsync(Partition partition, CancellationToken stopping)
    {
        var sentAt = _time.GetTimestamp();
        try
        {
            var acquired = (long)await Database.ScriptEvaluateAsync(
                DispatcherScripts.AcquireLease, [partition.Lease], [_instanceId, (long)_leaseTtl.TotalMilliseconds]).ConfigureAwait(false);
            if (acquired != 1 || stopping.IsCancellationRequested)
            {
                return;
            }
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            return;
        }

        partition.ValidUntil = sentAt + _leaseValidityTicks;
        var yield = partition.Begin(stopping);
        using (ExecutionContext.SuppressFlow())
        {
            partition.Loop = Task.Run(() => RunPartitionAsync(partition, yield), CancellationToken.None);
        }
    }

    private bool IsLeaseValid(Partition partition) => _time.GetTimestamp() < partition.ValidUntil;

    private async Task ReclaimDeadConsumersAsync(string[] live, CancellationToken stopping)
    {
        var db = Database;
        StreamConsumerInfo[] consumers;
        try
        {
            consumers = await db.StreamConsumerInfoAsync(_keys.SharedJobs, DispatcherScripts.Group).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (IsNoGroup(ex) || ex.Message.StartsWith("ERR no such key", StringComparison.Ordinal))
        {
            return;
        }

        var reclaimer = ConsumerName(0);
        var minIdle = (long)Math.Min(1000, _leaseTtl.TotalMilliseconds / 3);
        foreach (var consumer in consumers)
        {
            var name = consumer.Name;
            if (stopping.IsCancellationRequested || Array.BinarySearch(live, InstanceOf(name), StringComparer.Ordinal) >= 0)
            {
                continue;
            }

            if (consumer.PendingMessageCount == 0)
            {
                // A departed instance's consumer with nothing left: forget it, or the group grows with every restart.
                await db.StreamDeleteConsumerAsync(_keys.SharedJobs, DispatcherScripts.Group, name).ConfigureAwait(false);
                continue;
            }

            var entries = await db.StreamPendingMessagesAsync(_keys.SharedJobs, DispatcherScripts.Group, ReclaimPageSize, name).ConfigureAwait(false);
            var ids = new RedisValue[entries.Length];
            for (var i = 0; i < ids.Length; i++)
            {
                ids[i] = entries[i].MessageId;
            }

            // The idle floor makes two live nodes racing for one dead consumer's entries claim each entry once.
            var claimed = await db.StreamClaimAsync(_keys.SharedJobs, DispatcherScripts.Group, reclaimer, minIdle, ids).ConfigureAwait(false);
            var count = 0;
            foreach (var entry in claimed)
            {
                if (!entry.IsNull && _localShared.TryAdd(entry.Id, 0) && _dueRetries.Writer.TryWrite(StreamJob.Parse(entry, _byName)))
                {
                    count++;
                }
            }

            if (count > 0)
            {
                RedisLog.ConsumerReclaimed(_logger, _instanceId, count, name);
                _sharedWake.Set();
            }
        }
    }

    private async Task RefreshBacklogAsync()
    {
        var db = Database;
        var lengths = new Task<long>[_partitions.Length + 2];
        for (var i = 0; i < _partitions.Length; i++)
        {
            lengths[i] = db.StreamLengthAsync(_partitions[i].Stream);
        }

        lengths[^2] = db.StreamLengthAsync(_keys.SharedJobs);
        lengths[^1] = db.StreamLengthAsync(_keys.DeadLetters);
        try
        {
            await Task.WhenAll(lengths).ConfigureAwait(false);
        }
        catch
        {
            foreach (var length in lengths)
            {
                RedisFailures.Observe(length);
            }

            throw;
        }

        long total = 0;
        for (var i = 0; i < _lags.Length; i++)
        {
            var value = lengths[i].Result;
            Volatile.Write(ref _lags[i], value);
            total += value;
        }

        Volatile.Write(ref _lastPending, total);
        Volatile.Write(ref _lastDead, lengths[^1].Result);
    }

    private DispatcherStatistics CachedStatistics()
    {
        var inFlight = Interlocked.Read(ref _inFlight);
        return new DispatcherStatistics(Math.Max(0, Volatile.Read(ref _lastPending) - inFlight), inFlight, Volatile.Read(ref _lastDead));
    }

    // ---------------------------------------------------------------- partitions (keyed jobs)

    private async Task RunPartitionAsync(Partition partition, CancellationToken yield)
    {
        var db = Database;
        try
        {
            await EnsureGroupAsync(partition.Stream).ConfigureAwait(false);

            // What the previous owner read but did not finish comes first, in stream order: everything still pending
            // precedes every entry not yet delivered.
            var reclaimed = 0;
            RedisValue cursor = "0-0";
            do
            {
                var claim = await db.StreamAutoClaimAsync(partition.Stream, DispatcherScripts.Group, _instanceId, 0, cursor, _batchSize).ConfigureAwait(false);
                foreach (var entry in claim.ClaimedEntries)
                {
                    if (entry.IsNull)
                    {
                        continue;
                    }

                    reclaimed++;
                    if (yield.IsCancellationRequested || !await RunKeyedAsync(partition, StreamJob.Parse(entry, _byName), yield).ConfigureAwait(false))
                    {
                        return;
                    }
                }

                cursor = claim.NextStartId;
            }
            while (cursor != "0-0");

            RedisLog.PartitionAcquired(_logger, _instanceId, partition.Index, reclaimed);
            await ForgetIdleConsumersAsync(partition.Stream).ConfigureAwait(false);

            while (!yield.IsCancellationRequested && IsLeaseValid(partition))
            {
                var entries = await db.StreamReadGroupAsync(partition.Stream, DispatcherScripts.Group, _instanceId, StreamPosition.NewMessages, _batchSize).ConfigureAwait(false);
                if (entries.Length == 0)
                {
                    await partition.Wake.WaitAsync(_pollInterval, yield).ConfigureAwait(false);
                    continue;
                }

                foreach (var entry in entries)
                {
                    // Entries read but not run stay pending under our name; the next owner (maybe us again) runs them first.
                    if (yield.IsCancellationRequested || !await RunKeyedAsync(partition, StreamJob.Parse(entry, _byName), yield).ConfigureAwait(false))
                    {
                        return;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (yield.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (IsUnavailable(ex) || (ex is RedisServerException server && IsNoGroup(server)))
        {
            // The coordinator starts the partition again on its next tick (re-creating a vanished group).
            RedisLog.WorkerRedisFailed(_logger, ex, _leaseTtl / 3);
        }
        catch (Exception ex)
        {
            RedisLog.DispatcherLoopFailed(_logger, ex);
        }
        finally
        {
            if (!_abandoned)
            {
                await ReleaseAsync(partition).ConfigureAwait(false);
            }
        }
    }

    private async Task ReleaseAsync(Partition partition)
    {
        partition.ValidUntil = 0;
        try
        {
            if ((long)await Database.ScriptEvaluateAsync(DispatcherScripts.ReleaseLease, [partition.Lease], [_instanceId]).ConfigureAwait(false) == 1)
            {
                RedisLog.PartitionReleased(_logger, _instanceId, partition.Index);
                Announce(RebalanceMessage);
            }
        }
        catch (Exception ex) when (IsGone(ex))
        {
            // The lease expires on its own.
        }
    }

    private async Task ForgetIdleConsumersAsync(RedisKey stream)
    {
        // Previous owners' consumer entries, now with nothing pending, would otherwise pile up in the group.
        var db = Database;
        foreach (var consumer in await db.StreamConsumerInfoAsync(stream, DispatcherScripts.Group).ConfigureAwait(false))
        {
            if (consumer.PendingMessageCount == 0 && !string.Equals(consumer.Name, _instanceId, StringComparison.Ordinal))
            {
                await db.StreamDeleteConsumerAsync(stream, DispatcherScripts.Group, consumer.Name).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Runs one keyed job to its end (success or dead letter) in place; false when the partition must stop.</summary>
    private async Task<bool> RunKeyedAsync(Partition partition, StreamJob job, CancellationToken yield)
    {
        while (true)
        {
            if (!IsLeaseValid(partition))
            {
                return false;
            }

            var attempt = ++job.Attempts;
            var outcome = await RunAttemptAsync(job, attempt, partition).ConfigureAwait(false);
            if (outcome.Interrupted)
            {
                return false;
            }

            if (outcome.Error is null)
            {
                return await SettleAsync(DispatcherScripts.Complete, [partition.Stream, partition.Lease], CompleteArgs(job), partition).ConfigureAwait(false);
            }

            if (attempt >= _maxAttempts || outcome.Permanent)
            {
                DeadLettered(job, attempt, outcome);
                return await SettleAsync(DispatcherScripts.DeadLetter, [partition.Stream, _keys.DeadLetters, partition.Lease], DeadLetterArgs(job, attempt, outcome.Error), partition).ConfigureAwait(false);
            }

            // Retrying in place keeps the key's order: the jobs behind this one in the partition wait, others don't.
            var delay = Retrying(job, attempt, outcome);
            await Task.Delay(delay, _time, yield).ConfigureAwait(false);
        }
    }

    // ---------------------------------------------------------------- shared stream (unkeyed jobs)

    private async Task RunSharedWorkerAsync(string consumer)
    {
        var stopping = _stopping.Token;
        var db = Database;
        var groupReady = false;
        var recoverOwnPending = true;
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                if (_dueRetries.Reader.TryRead(out var due))
                {
                    _localShared.TryAdd(due.EntryId, 0);
                    await RunSharedAsync(due).ConfigureAwait(false);
                    continue;
                }

                if (!groupReady)
                {
                    await EnsureGroupAsync(_keys.SharedJobs).ConfigureAwait(false);
                    groupReady = true;
                }

                if (recoverOwnPending)
                {
                    // A read whose reply was lost (Redis dropped the connection) left entries pending under our name
                    // that no one here knows about: re-read our pending entries and run the unknown ones.
                    await RecoverOwnPendingAsync(consumer).ConfigureAwait(false);
                    recoverOwnPending = false;
                }

                var entries = await db.StreamReadGroupAsync(_keys.SharedJobs, DispatcherScripts.Group, consumer, StreamPosition.NewMessages, 1).ConfigureAwait(false);
                if (entries.Length == 0)
                {
                    await _sharedWake.WaitAsync(_pollInterval, stopping).ConfigureAwait(false);
                    continue;
                }

                // There may be more: let another idle worker look too (the wake-up chains through idle workers).
                _sharedWake.Set();
                _localShared.TryAdd(entries[0].Id, 0);
                await RunSharedAsync(StreamJob.Parse(entries[0], _byName)).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                groupReady = false;
                recoverOwnPending = true;
                if (IsUnavailable(ex) || (ex is RedisServerException server && IsNoGroup(server)))
                {
                    RedisLog.WorkerRedisFailed(_logger, ex, _pollInterval);
                }
                else
                {
                    RedisLog.DispatcherLoopFailed(_logger, ex);
                }

                try
                {
                    await Task.Delay(_pollInterval, _time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task RecoverOwnPendingAsync(string consumer)
    {
        var db = Database;
        RedisValue after = "0-0";
        while (true)
        {
            var entries = await db.StreamReadGroupAsync(_keys.SharedJobs, DispatcherScripts.Group, consumer, after, ReclaimPageSize).ConfigureAwait(false);
            if (entries.Length == 0)
            {
                return;
            }

            foreach (var entry in entries)
            {
                if (!entry.IsNull && _localShared.TryAdd(entry.Id, 0))
                {
                    _dueRetries.Writer.TryWrite(StreamJob.Parse(entry, _byName));
                    _sharedWake.Set();
                }
            }

            after = entries[^1].Id;
        }
    }

    private async Task RunSharedAsync(StreamJob job)
    {
        var attempt = ++job.Attempts;
        var outcome = await RunAttemptAsync(job, attempt, partition: null).ConfigureAwait(false);
        if (outcome.Interrupted)
        {
            // Stays pending under our consumer; a live node claims it once this instance has left.
            _localShared.TryRemove(job.EntryId, out _);
            return;
        }

        if (outcome.Error is null)
        {
            await SettleAsync(DispatcherScripts.Complete, [_keys.SharedJobs], CompleteArgs(job), partition: null).ConfigureAwait(false);
            _localShared.TryRemove(job.EntryId, out _);
            return;
        }

        if (attempt >= _maxAttempts || outcome.Permanent)
        {
            DeadLettered(job, attempt, outcome);
            await SettleAsync(DispatcherScripts.DeadLetter, [_keys.SharedJobs, _keys.DeadLetters], DeadLetterArgs(job, attempt, outcome.Error), partition: null).ConfigureAwait(false);
            _localShared.TryRemove(job.EntryId, out _);
            return;
        }

        // The entry stays pending under our consumer while it waits, holding no worker.
        var delay = Retrying(job, attempt, outcome);
        var timer = _time.CreateTimer(OnRetryDue, job, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _retryTimers[job] = timer;
        timer.Change(delay, Timeout.InfiniteTimeSpan);
    }

    private void OnRetryDue(object? state)
    {
        var job = (StreamJob)state!;
        if (_retryTimers.TryRemove(job, out var timer))
        {
            timer.Dispose();
            _dueRetries.Writer.TryWrite(job);
            _sharedWake.Set();
        }
    }

    // ---------------------------------------------------------------- one attempt

    private async Task<AttemptOutcome> RunAttemptAsync(StreamJob job, int attempt, Partition? partition)
    {
        var aborting = _aborting.Token;
        try
        {
            await _workerSlots.WaitAsync(aborting).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return AttemptOutcome.WasInterrupted;
        }

        if (partition is not null && !IsLeaseValid(partition))
        {
            // The lease lapsed while we waited for a worker: the next owner runs the job, not us.
            _workerSlots.Release();
            return AttemptOutcome.WasInterrupted;
        }

        Interlocked.Increment(ref _inFlight);
        var started = _time.GetTimestamp();
        try
        {
            var registration = job.Registration
                ?? throw new PermanentJobException($"No job handler is registered for job type '{job.TypeName}' on node '{_nodeId}'.");
            object payload;
            try
            {
                payload = registration.Deserialize(job.Data);
            }
            catch (Exception ex) when (ex is System.Text.Json.JsonException or NotSupportedException)
            {
                throw new PermanentJobException($"The payload of job {job.JobId} is not a valid '{job.TypeName}': {ex.Message}", ex);
            }

            var context = new JobContext(job.JobId, registration.Name, job.Key, attempt, job.EnqueuedAt);
            var scope = _scopeFactory.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                await registration.InvokeAsync(scope.ServiceProvider, payload, context, aborting).ConfigureAwait(false);
            }

            _metrics.Succeeded(_time.GetElapsedTime(started));
            return AttemptOutcome.Succeeded;
        }
        catch (OperationCanceledException) when (aborting.IsCancellationRequested)
        {
            RedisLog.JobInterrupted(_logger, job.JobId, job.TypeName, attempt);
            return AttemptOutcome.WasInterrupted;
        }
        catch (Exception ex)
        {
            return new AttemptOutcome(ex, ex is PermanentJobException, false, _time.GetElapsedTime(started));
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            _workerSlots.Release();
        }
    }

    private TimeSpan Retrying(StreamJob job, int attempt, AttemptOutcome outcome)
    {
#pragma warning disable CA5394 // Jitter only spreads retries out; it needs no cryptographic randomness.
        var delay = RetryBackoff.Compute(attempt, _initialBackoff, _maxBackoff, Random.Shared.NextDouble());
#pragma warning restore CA5394
        _metrics.Retried(outcome.Duration);
        RedisLog.JobRetrying(_logger, outcome.Error!, job.JobId, job.TypeName, attempt, delay);
        return delay;
    }

    private void DeadLettered(StreamJob job, int attempt, AttemptOutcome outcome)
    {
        _metrics.DeadLettered(outcome.Duration);
        RedisLog.JobDeadLettered(_logger, outcome.Error!, job.JobId, job.TypeName, attempt);
    }

    private RedisValue[] CompleteArgs(StreamJob job) => [DispatcherScripts.Group, job.EntryId, _instanceId];

    private RedisValue[] DeadLetterArgs(StreamJob job, int attempt, Exception error)
    {
        var text = error is PermanentJobException ? error.Message : $"{error.GetType().FullName}: {error.Message}";
        return
        [
            DispatcherScripts.Group, job.EntryId, _instanceId, job.JobId, job.TypeName, job.Key ?? string.Empty, job.Data,
            attempt, text, job.EnqueuedAt.ToUnixTimeMilliseconds(),
        ];
    }

    /// <summary>
    /// Runs an ack or dead-letter script, retrying while Redis is unreachable for as long as this instance may still
    /// settle the job (holds the partition's lease, or is not aborting). False when the job was left to another owner.
    /// </summary>
    private async Task<bool> SettleAsync(string script, RedisKey[] keys, RedisValue[] args, Partition? partition)
    {
        while (true)
        {
            try
            {
                var settled = (long)await Database.ScriptEvaluateAsync(script, keys, args).ConfigureAwait(false) == 1;
                if (!settled && partition is not null)
                {
                    RedisLog.PartitionLeaseLost(_logger, _instanceId, partition.Index);
                    partition.ValidUntil = 0;
                }

                return settled;
            }
            catch (Exception ex) when (IsUnavailable(ex))
            {
                if ((partition is not null && !IsLeaseValid(partition)) || _aborting.IsCancellationRequested)
                {
                    return false;
                }

                RedisLog.WorkerRedisFailed(_logger, ex, RedisRetryDelay);
                try
                {
                    await Task.Delay(RedisRetryDelay, _time, _aborting.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
            }
        }
    }

    private async Task EnsureGroupAsync(RedisKey stream)
    {
        try
        {
            // From the very start of the stream: jobs added before the group existed must run too.
            await Database.StreamCreateConsumerGroupAsync(stream, DispatcherScripts.Group, "0-0", createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
        }
    }

    /// <summary>
    /// Unreachable, or up but not serving yet: right after a restart Redis answers <c>LOADING</c> while it replays its
    /// persistence file, which is as transient as a refused connection.
    /// </summary>
    private static bool IsUnavailable(Exception exception)
        => RedisFailures.IsUnavailable(exception)
            || (exception is RedisServerException server && server.Message.StartsWith("LOADING", StringComparison.Ordinal));

    /// <summary>
    /// For best-effort cleanup (release, leave, unsubscribe): Redis unreachable, or the shared connection already
    /// disposed by a host shutting down in another order. Either way the lease and membership expire on their own.
    /// </summary>
    private static bool IsGone(Exception exception) => IsUnavailable(exception) || exception is ObjectDisposedException;

    private static bool IsNoGroup(RedisServerException exception) => exception.Message.StartsWith("NOGROUP", StringComparison.Ordinal);

    private static RedisValue Field(StreamEntry entry, string name)
    {
        foreach (var pair in entry.Values)
        {
            if (pair.Name == name)
            {
                return pair.Value;
            }
        }

        return RedisValue.Null;
    }

    private static async Task<T> Redis<T>(Task<T> command, string operation, CancellationToken cancellationToken)
    {
        try
        {
            return await RedisFailures.WaitAsync(command, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw RedisFailures.Unavailable(operation, ex);
        }
    }

    private readonly record struct AttemptOutcome(Exception? Error, bool Permanent, bool Interrupted, TimeSpan Duration)
    {
        public static AttemptOutcome Succeeded => default;

        public static AttemptOutcome WasInterrupted => new(null, false, true, default);
    }

    /// <summary>A failure no retry can fix on this node (no handler, unreadable payload): dead-letter at once.</summary>
    private sealed class PermanentJobException : Exception
    {
        public PermanentJobException(string message)
            : base(message)
        {
        }

        public PermanentJobException(string message, Exception innerException)
            : base(message, innerException)
        {
        }
    }

    /// <summary>One partition as seen by this instance: its keys, lease validity and current loop.</summary>
    private sealed class Partition(int index, RedisKey stream, RedisKey lease) : IDisposable
    {
        private long _validUntil;
        private CancellationTokenSource? _yield;

        public int Index { get; } = index;

        public RedisKey Stream { get; } = stream;

        public RedisKey Lease { get; } = lease;

        public Signal Wake { get; } = new();

        /// <summary>The loop working the partition while this instance holds its lease; touched by the coordinator only.</summary>
        public Task? Loop { get; set; }

        /// <summary>The timestamp until which the lease is certainly ours.</summary>
        public long ValidUntil
        {
            get => Volatile.Read(ref _validUntil);
            set => Volatile.Write(ref _validUntil, value);
        }

        public CancellationToken Begin(CancellationToken stopping)
        {
            _yield?.Dispose();
            _yield = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            return _yield.Token;
        }

        /// <summary>Asks the loop to stop after its current job.</summary>
        public void Yield() => _yield?.Cancel();

        public void Dispose()
        {
            _yield?.Dispose();
            Wake.Dispose();
        }
    }

    /// <summary>An auto-reset wake-up that coalesces signals.</summary>
    private sealed class Signal : IDisposable
    {
        private readonly SemaphoreSlim _semaphore = new(0, 1);

        public void Dispose() => _semaphore.Dispose();

        public void Set()
        {
            if (_semaphore.CurrentCount == 0)
            {
                try
                {
                    _semaphore.Release();
                }
                catch (SemaphoreFullException)
                {
                    // Someone else set it first.
                }
                catch (ObjectDisposedException)
                {
                    // A late wake-up (timer or subscription) after disposal: nobody is waiting any more.
                }
            }
        }

        public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _semaphore.WaitAsync(timeout, cancellationToken);
    }

    /// <summary>A job read from a stream entry.</summary>
    private sealed class StreamJob
    {
        public RedisValue EntryId { get; private init; }

        public string JobId { get; private init; } = string.Empty;

        public string TypeName { get; private init; } = string.Empty;

        public string? Key { get; private init; }

        public byte[] Data { get; private init; } = [];

        public DateTimeOffset EnqueuedAt { get; private init; }

        public JobTypeRegistration? Registration { get; private init; }

        /// <summary>Attempts made so far (the stored count, then this instance's). Touched by the job's current runner only.</summary>
        public int Attempts { get; set; }

        public static StreamJob Parse(StreamEntry entry, FrozenDictionary<string, JobTypeRegistration>? registrations = null)
        {
            string? id = null, type = null, key = null;
            byte[]? data = null;
            long enqueued = 0;
            var attempts = 0;
            foreach (var pair in entry.Values)
            {
                switch ((string?)pair.Name)
                {
                    case "id": id = pair.Value; break;
                    case "type": type = pair.Value; break;
                    case "key": key = pair.Value; break;
                    case "data": data = pair.Value; break;
                    case "enq": pair.Value.TryParse(out enqueued); break;
                    case "attempt": pair.Value.TryParse(out attempts); break;
                }
            }

            type ??= string.Empty;
            JobTypeRegistration? registration = null;
            registrations?.TryGetValue(type, out registration);
            return new StreamJob
            {
                EntryId = entry.Id,
                JobId = id ?? (string)entry.Id!,
                TypeName = type,
                Key = key,
                Data = data ?? [],
                EnqueuedAt = DateTimeOffset.FromUnixTimeMilliseconds(enqueued),
                Registration = registration,
                Attempts = attempts,
            };
        }
    }
}
