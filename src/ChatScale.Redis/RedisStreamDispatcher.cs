using System.Diagnostics;
using System.Diagnostics.Metrics;
using ChatScale.Dispatching;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Internal.Dispatching;
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
/// and jobs of one ordering key run one at a time in enqueue order across the whole cluster, never two at once.
/// </summary>
/// <remarks>
/// <para><b>Delivery: at least once.</b> A job is deleted from Redis only after its handler returned (or after it was
/// dead-lettered). A node that crashes mid-job, loses its lease, or is stopped past its shutdown deadline leaves the job
/// in Redis and another node runs it again, so <b>handlers must be idempotent</b>: use
/// <see cref="JobContext.JobId"/>, which never changes for a job, to skip work already done.</para>
/// <para><b>Ordering and fencing.</b> A keyed job is appended (<c>XADD</c>) to one of
/// <see cref="DispatcherOptions.Partitions"/> partition streams chosen by <see cref="OrderingKeyHash"/>, each in its own
/// cluster slot. Each partition has at most one owner at a time, which holds a lease carrying a <b>fencing token</b>
/// that grows with every new owner (<see cref="JobContext.FencingToken"/>). Every read, ack, retry and dead-letter of
/// the partition proves that exact lease in the same Lua script, so a former owner (frozen, cut off, or just late)
/// can neither take entries nor settle them. The owner renews its lease until the last of its handlers has
/// returned, and a handler's cancellation token fires as soon as the lease can no longer be renewed in time (a fifth
/// of <see cref="RedisDispatcherOptions.LeaseTtl"/> before Redis could expire it), so a handler that honours its token
/// never overlaps with the next owner's attempt of the same key.</para>
/// <para><b>No head-of-line blocking.</b> Inside a partition, jobs go to per-key lanes: one key's jobs run strictly one
/// after another (the next starts once the previous one is acked), while other keys of the partition go on in
/// parallel, so a retrying or flooded key holds back only itself. Jobs without a key go to one shared stream read by
/// every node in parallel, in no particular order. At most <see cref="DispatcherOptions.WorkerCount"/> handlers run at
/// once per node.</para>
/// <para><b>Assignment.</b> Every instance heartbeats a membership entry that expires after the lease TTL; partitions
/// are assigned by rendezvous hashing over the live instances, so a join or leave of one of N instances moves about
/// 1/N of them; a starting instance waits a moment after joining (a tenth of the lease TTL, at most 1 s) before it
/// takes any, so instances started together take each partition once. An instance hands a partition over only after
/// its running handlers have returned, then releases the lease. A new owner first claims every entry pending under any other consumer and runs them in stream order before
/// new entries, and checks for such entries again at any time while it owns the partition.</para>
/// <para><b>Retries.</b> Up to <see cref="DispatcherOptions.MaxAttempts"/> attempts <i>in total, on all nodes</i>:
/// after a failure, the attempt count and the time of the next attempt are stored with the entry, so a new owner
/// continues both. Backoff is exponential with ±20 % jitter, clamped (<see cref="RetryPolicy"/>). An attempt cut short
/// by a crash or a lost lease is not counted. After the last attempt the job, its last error and attempt count move
/// atomically to its partition's dead-letter stream, where <see cref="GetDeadLettersAsync"/>,
/// <see cref="ReplayDeadLettersAsync"/> and <see cref="PurgeDeadLettersAsync"/> work on it; a replayed keyed job goes
/// back to its key's partition with its key. A settle (ack, retry record, dead letter) that fails for any reason
/// (<c>READONLY</c> during a failover, a timeout) is retried while this node may still settle the job.</para>
/// <para><b>Redis outages.</b> <see cref="EnqueueAsync{TJob}"/> throws <see cref="BackplaneUnavailableException"/> when
/// Redis cannot be reached (after retrying for <see cref="RedisDispatcherOptions.EnqueueRetryTimeout"/>, zero by
/// default); a job is accepted only once Redis acknowledged the <c>XADD</c>. Workers back off and resume on their own.
/// Keeping accepted jobs across a Redis <i>restart</i> needs Redis persistence (AOF with <c>appendfsync always</c> for
/// no loss at all).</para>
/// <para><b>Lifecycle.</b> Nothing runs until <see cref="StartAsync"/>. <c>AddRedis()</c> registers it as the
/// <see cref="IBackgroundDispatcher"/>, and the ASP.NET Core package's <c>AddChatScale()</c> starts and stops whichever
/// dispatcher is registered with the host; a host without that package adds
/// <c>services.AddHostedService(sp =&gt; sp.GetRequiredService&lt;RedisStreamDispatcher&gt;())</c>.</para>
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
    // Long enough for a Redis that answers to confirm the clean-up when other services used the host's whole deadline.
    private static readonly TimeSpan CleanupAfterDeadline = TimeSpan.FromSeconds(1);

    private readonly DispatcherRuntime _runtime;
    private readonly DispatcherWakeUps _wakeUps;
    private readonly DispatcherBacklog _backlog;
    private readonly DeadLetterStore _deadLetters;
    private readonly SharedStreamWorker _shared;
    private readonly DispatcherCoordinator _coordinator;
    private readonly JobEnqueuer _enqueuer;
    private readonly DispatcherLifecycle _lifecycle = new();

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
        var workers = Positive(dispatcher.WorkerCount, nameof(DispatcherOptions.WorkerCount));
        var partitions = Positive(dispatcher.Partitions, nameof(DispatcherOptions.Partitions));
        Positive(dispatcher.MaxAttempts, nameof(DispatcherOptions.MaxAttempts));
        if (partitions > short.MaxValue)
        {
            throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)}:{nameof(DispatcherOptions.Partitions)} must be at most {short.MaxValue} (was {partitions}).", nameof(options));
        }

        if (streams.LeaseTtl < TimeSpan.FromMilliseconds(300) || streams.PollInterval <= TimeSpan.Zero || streams.ReadBatchSize <= 0)
        {
            throw new ArgumentException(
                $"{ChatScaleRedisOptions.SectionName}:{nameof(ChatScaleRedisOptions.Dispatcher)}: LeaseTtl must be at least 300 ms, PollInterval and ReadBatchSize greater than 0.",
                nameof(redisOptions));
        }

        var time = timeProvider ?? TimeProvider.System;
        var logger = (ILogger?)loggerFactory?.CreateLogger<RedisStreamDispatcher>() ?? NullLogger.Instance;
        RedisDispatcherMetrics? metrics = null;
        _runtime = new DispatcherRuntime
        {
            Multiplexer = multiplexer,
            Keys = new RedisKeyspace(redis.KeyPrefix, redis.UseShardedPubSub),
            Registry = new JobTypeRegistry(registrations),
            Runner = new JobAttemptRunner(scopeFactory, time),
            Retry = new RetryPolicy(dispatcher),
            Logger = logger,
            Metrics = metrics = new RedisDispatcherMetrics(meterFactory, partitions, () => _backlog!.Observe(), () => _backlog!.ObserveLags()),
            Time = time,
            InstanceId = Guid.NewGuid().ToString("N"),
            NodeId = core.NodeId,
            Partitions = partitions,
            WorkerCount = workers,
            LeaseTtl = streams.LeaseTtl,
            PollInterval = streams.PollInterval,
            ReadBatchSize = streams.ReadBatchSize,
            MaxBufferedPerPartition = Math.Max(2048, streams.ReadBatchSize * 8),
            Slots = new SemaphoreSlim(workers, workers),
        };
        _wakeUps = new DispatcherWakeUps(_runtime);
        _enqueuer = new JobEnqueuer(
            _runtime,
            _wakeUps,
            streams.EnqueueRetryTimeout < TimeSpan.Zero ? TimeSpan.Zero : streams.EnqueueRetryTimeout,
            streams.MaxStreamLength is { } cap ? (int)Math.Clamp(cap, 1, int.MaxValue) : null);
        _backlog = new DispatcherBacklog(_runtime);
        _deadLetters = new DeadLetterStore(_runtime);
        _shared = new SharedStreamWorker(_runtime, _wakeUps.SharedSignal);
        _coordinator = new DispatcherCoordinator(_runtime, _wakeUps, _shared);

        static int Positive(int value, string name) => value > 0
            ? value
            : throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)}:{name} must be greater than 0 (was {value}).", nameof(options));
    }

    /// <summary>This instance's id in the membership, leases and consumer names (unique per process start).</summary>
    internal string InstanceId => _runtime.InstanceId;

    /// <summary>How many partitions this instance works now (for tests and diagnostics).</summary>
    internal int OwnedPartitionCount => _coordinator.OwnedPartitionCount;

    /// <inheritdoc />
    /// <remarks>
    /// Serializes the job with its registration's System.Text.Json metadata into one binary stream field (with the
    /// job id, type, key, enqueue time and the current trace context) and appends it to its partition stream (or the
    /// shared stream): one <c>XADD</c>. Then wakes the partition's owner: a local signal when that is this node, else
    /// one coalesced <c>PUBLISH</c> to the owner only. Returns once Redis has the job. Enqueueing works before
    /// <see cref="StartAsync"/> and on nodes that never start the dispatcher.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The dispatcher was disposed.</exception>
    public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
        where TJob : notnull
    {
        ArgumentNullException.ThrowIfNull(job);
        ObjectDisposedException.ThrowIf(_lifecycle.IsDisposed, this);
        var registration = _runtime.Registry.Find(typeof(TJob), job.GetType());
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<string>(cancellationToken);
        }

        return _enqueuer.EnqueueAsync(registration, job, orderingKey, cancellationToken);
    }

    /// <inheritdoc />
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable.</exception>
    public async ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        return maxCount == 0 ? [] : await Redis(_deadLetters.ListAsync(maxCount, cancellationToken), "listing dead letters").ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Each job moves atomically from its dead-letter stream back to its partition (keyed jobs, behind the jobs already
    /// queued there, with their key) or to the shared stream, keeping its id, with a fresh attempt count. Replaying all
    /// takes the jobs dead-lettered before the call, so a replayed job that fails again is not replayed twice by one call.
    /// </remarks>
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable; jobs replayed before the failure stay replayed.</exception>
    public async ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_lifecycle.IsDisposed, this);
        var (replayed, partitions) = await Redis(_deadLetters.ReplayAsync(jobId, cancellationToken), "replaying dead letters").ConfigureAwait(false);
        foreach (var partition in partitions)
        {
            _wakeUps.JobsReplayed(partition);
        }

        return replayed;
    }

    /// <inheritdoc />
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable.</exception>
    public async ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default)
        => await Redis(_deadLetters.PurgeAsync(cancellationToken), "purging dead letters").ConfigureAwait(false);

    /// <inheritdoc />
    /// <remarks>
    /// <see cref="DispatcherStatistics.Pending"/> counts every unfinished job in Redis (queued, waiting for a retry, or
    /// running on another node) minus the ones running here; <see cref="DispatcherStatistics.InFlight"/> counts the
    /// handlers running on this node; <see cref="DispatcherStatistics.DeadLettered"/> the dead-letter streams' length.
    /// </remarks>
    /// <exception cref="BackplaneUnavailableException">Redis is unreachable.</exception>
    public async ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default)
    {
        // Observed even if the caller stops waiting, so a late failure never goes unobserved.
        var refresh = _backlog.RefreshAsync();
        RedisFailures.Observe(refresh);
        await Redis(refresh.WaitAsync(cancellationToken), "reading the dispatcher statistics").ConfigureAwait(false);
        return _backlog.Snapshot();
    }

    /// <summary>
    /// Joins the membership and starts working: the partitions assigned to this instance as their leases become free,
    /// and the shared stream. Does not wait for Redis: while it is unreachable, the dispatcher keeps retrying.
    /// </summary>
    /// <param name="cancellationToken">Not used: starting does not wait.</param>
    /// <returns>A completed task.</returns>
    /// <exception cref="InvalidOperationException">The dispatcher was already started (a stopped one cannot be restarted).</exception>
    /// <exception cref="ObjectDisposedException">The dispatcher was disposed.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _lifecycle.Start(this, "The Redis stream dispatcher", () =>
        {
            _coordinator.Start();
            _shared.Start();
        });
        RedisLog.DispatcherStarted(_runtime.Logger, _runtime.InstanceId, _runtime.NodeId, _runtime.Partitions, _runtime.WorkerCount);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops taking jobs and waits for running handlers, <b>renewing their leases meanwhile</b>, so no other node runs
    /// their keys before they return; then releases each partition and leaves the membership, so the others take over
    /// at once. When <paramref name="cancellationToken"/> fires (the host's shutdown deadline) the handlers' tokens are
    /// cancelled first and they get a short grace to return (half the lease TTL, at most 5 s); a partition whose handler
    /// still runs after that is not released (its lease expires on its own). Unfinished jobs stay in Redis. Leaving the
    /// membership and the wake-up subscription is given up 1 s after the deadline (Redis stalled or paused: they
    /// expire on their own), so a stop never waits for Redis command timeouts past the deadline and its grace.
    /// </summary>
    /// <param name="cancellationToken">The host's shutdown deadline.</param>
    /// <returns>A task that completes when the dispatcher has stopped.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_lifecycle.BeginStop())
        {
            return;
        }

        await _runtime.Stopping.CancelAsync().ConfigureAwait(false);

        // A stop ends soon after the host's deadline even when Redis stalls: once the deadline fires, handlers get the
        // grace to return, and the clean-up (leaving the membership, the wake-up subscription) gets CleanupAfterDeadline;
        // what is given up then (leases, membership) expires in Redis on its own after the lease TTL.
        var grace = _runtime.LeaseTtl / 2 < TimeSpan.FromSeconds(5) ? _runtime.LeaseTtl / 2 : TimeSpan.FromSeconds(5);
        var cleanupOver = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var cleanupTimer = _runtime.Time.CreateTimer(static s => ((TaskCompletionSource)s!).TrySetResult(), cleanupOver, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        var drained = Task.WhenAll(_coordinator.WhenWorkersEnded(), _shared.Completion);
        try
        {
            await drained.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await _runtime.Aborting.CancelAsync().ConfigureAwait(false);

            // A handler that ignores its token: its partition is not released; its lease lapses here and in Redis.
            await WithinAsync(drained, "waiting for running handlers", Task.Delay(grace, _runtime.Time, CancellationToken.None)).ConfigureAwait(false);
        }

        using (cancellationToken.Register(() => cleanupTimer.Change(CleanupAfterDeadline, Timeout.InfiniteTimeSpan)))
        {
            var leave = _coordinator.EndAsync(leave: true);
            var unsubscribe = _wakeUps.UnsubscribeAsync();
            await WithinAsync(leave, "leaving the membership", cleanupOver.Task).ConfigureAwait(false);
            await WithinAsync(unsubscribe, "ending the wake-up subscription", cleanupOver.Task).ConfigureAwait(false);
        }

        await _shared.DisposeTimersAsync().ConfigureAwait(false);
        RedisLog.DispatcherStopped(_runtime.Logger, _runtime.InstanceId);
    }

    private async Task WithinAsync(Task step, string what, Task givenUp)
    {
        if (await Task.WhenAny(step, givenUp).ConfigureAwait(false) == step)
        {
            await step.ConfigureAwait(false);
            return;
        }

        RedisFailures.Observe(step);
        RedisLog.DispatcherStopAbandoned(_runtime.Logger, _runtime.InstanceId, what);
    }

    /// <summary>
    /// Stops like <see cref="StopAsync"/> with an expired deadline (running handlers are cancelled and their jobs stay
    /// in Redis), then releases timers, metrics and the wake-up subscription. The shared connection is not closed.
    /// </summary>
    /// <returns>A task that completes when everything is released.</returns>
    public async ValueTask DisposeAsync()
    {
        if (_lifecycle.IsRunning)
        {
            await StopAsync(new CancellationToken(canceled: true)).ConfigureAwait(false);
        }

        if (!_lifecycle.BeginDispose())
        {
            return;
        }

        await _runtime.Stopping.CancelAsync().ConfigureAwait(false);
        await _runtime.Aborting.CancelAsync().ConfigureAwait(false);
        await _coordinator.EndAsync(leave: false).ConfigureAwait(false);
        await _wakeUps.UnsubscribeAsync().ConfigureAwait(false);
        await _shared.DisposeTimersAsync().ConfigureAwait(false);
        _runtime.Metrics.Dispose();
        _coordinator.Dispose();
        _shared.Dispose();
        _wakeUps.Dispose();
        _runtime.Dispose();
    }

    /// <summary>
    /// Simulates a crash, for tests: every loop and handler stops at once, nothing is acknowledged, no lease is
    /// released and the membership is not left, so other instances take over only after the lease TTL.
    /// </summary>
    internal async Task AbandonAsync()
    {
        _runtime.Abandoned = true;
        if (!_lifecycle.BeginStop())
        {
            return;
        }

        await _runtime.Stopping.CancelAsync().ConfigureAwait(false);
        await _runtime.Aborting.CancelAsync().ConfigureAwait(false);
        await _coordinator.EndAsync(leave: false).ConfigureAwait(false);
        await Task.WhenAll(_coordinator.WhenWorkersEnded(), _shared.Completion).ConfigureAwait(false);
        await _wakeUps.UnsubscribeAsync().ConfigureAwait(false);
        await _shared.DisposeTimersAsync().ConfigureAwait(false);
    }

    private static async Task<T> Redis<T>(Task<T> command, string operation)
    {
        try
        {
            return await command.ConfigureAwait(false);
        }
        catch (Exception ex) when (DispatcherRuntime.IsUnavailable(ex))
        {
            throw RedisFailures.Unavailable(operation, ex);
        }
    }

    private static async Task Redis(Task command, string operation)
    {
        try
        {
            await command.ConfigureAwait(false);
        }
        catch (Exception ex) when (DispatcherRuntime.IsUnavailable(ex))
        {
            throw RedisFailures.Unavailable(operation, ex);
        }
    }
}
