using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using ChatScale.Diagnostics;
using ChatScale.Dispatching;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChatScale.InMemory;

/// <summary>
/// The single-node <see cref="IBackgroundDispatcher"/>: jobs are kept in this process's memory as objects (never
/// serialized) and run by background loops started with the host.
/// </summary>
/// <remarks>
/// <para><b>Lanes.</b> Every ordering key has its own sequential lane (while it has jobs): a lane runs one job at a
/// time and retries a failing job in place, so the later jobs of that key (and only those) wait; a retrying or
/// flooded key never holds back another key. Jobs without a key share a queue served by
/// <see cref="DispatcherOptions.WorkerCount"/> workers; a failing one is put back after its backoff without holding
/// a worker. At most <see cref="DispatcherOptions.WorkerCount"/> handlers run at once, lanes included.</para>
/// <para><b>Capacity.</b> At most <see cref="DispatcherOptions.QueueCapacity"/> newly enqueued jobs wait to start;
/// <see cref="EnqueueAsync{TJob}"/> waits for space beyond that. Retries and replays never wait for space.</para>
/// <para><b>Durability.</b> None: jobs still pending when the process exits are lost. <see cref="StopAsync"/> stops
/// taking new work, lets running handlers finish until the host's shutdown deadline (then signals their
/// cancellation token) and leaves every job it did not finish counted as pending. A stopped dispatcher cannot be
/// started again; jobs enqueued before <see cref="StartAsync"/> wait for it.</para>
/// <para><b>Threading.</b> Thread-safe.</para>
/// </remarks>
/// <example>
/// <code>
/// services.AddSingleton&lt;InMemoryBackgroundDispatcher&gt;();
/// services.AddSingleton&lt;IBackgroundDispatcher&gt;(sp =&gt; sp.GetRequiredService&lt;InMemoryBackgroundDispatcher&gt;());
/// services.AddHostedService(sp =&gt; sp.GetRequiredService&lt;InMemoryBackgroundDispatcher&gt;());
/// </code>
/// </example>
public sealed class InMemoryBackgroundDispatcher : IBackgroundDispatcher, IHostedService, IAsyncDisposable
{
    /// <summary>How long <see cref="DisposeAsync"/> waits for cancelled handlers to return.</summary>
    private static readonly TimeSpan DisposeGracePeriod = TimeSpan.FromSeconds(5);

    private readonly JobTypeRegistry _registry;
    private readonly InMemoryAttempts _attempts;
    private readonly DispatcherLifecycle _lifecycle = new();
    private readonly ILogger _logger;
    private readonly ChatScaleMetrics _metrics;
    private readonly TimeProvider _timeProvider;
    private readonly int _workerCount;
    private readonly int _partitions;

    private readonly Channel<QueuedJob> _unordered;
    private readonly KeyLanes<QueuedJob> _lanes;
    private readonly SemaphoreSlim _queueSpace;

    // The semaphores and token sources are never disposed: none of them owns a timer, wait handle or other unmanaged
    // resource, and late callers (an enqueue racing DisposeAsync, a handler outliving it, a host token firing after
    // StopAsync returned) must still be able to use them.
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _aborting = new();
    private readonly CancellationTokenSource _disposing = new();

    private readonly RetryTimers<QueuedJob> _retryTimers;
    private readonly InMemoryBacklog _backlog = new();
    private Task[] _loops = [];

    /// <summary>Creates the dispatcher. Nothing runs until <see cref="StartAsync"/>.</summary>
    /// <param name="options">The node options; <see cref="ChatScaleOptions.Dispatcher"/> is read once, here.</param>
    /// <param name="scopeFactory">Creates the DI scope each attempt's handler is resolved from.</param>
    /// <param name="registrations">The job types registered with <c>AddJobHandler&lt;TJob, THandler&gt;()</c>.</param>
    /// <param name="loggerFactory">Logging; optional.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    /// <param name="timeProvider">The clock for timestamps and retry delays; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">A dispatcher option that must be positive is not.</exception>
    public InMemoryBackgroundDispatcher(
        IOptions<ChatScaleOptions> options,
        IServiceScopeFactory scopeFactory,
        IEnumerable<JobTypeRegistration> registrations,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(scopeFactory);
        ArgumentNullException.ThrowIfNull(registrations);
        var dispatcher = options.Value.Dispatcher
            ?? throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)} must not be null.", nameof(options));
        _workerCount = Positive(dispatcher.WorkerCount, nameof(DispatcherOptions.WorkerCount));
        _partitions = Positive(dispatcher.Partitions, nameof(DispatcherOptions.Partitions));
        var capacity = Positive(dispatcher.QueueCapacity, nameof(DispatcherOptions.QueueCapacity));
        Positive(dispatcher.MaxAttempts, nameof(DispatcherOptions.MaxAttempts));
        var retry = new RetryPolicy(dispatcher);
        _registry = new JobTypeRegistry(registrations);
        _logger = (ILogger?)loggerFactory?.CreateLogger<InMemoryBackgroundDispatcher>() ?? NullLogger.Instance;
        _timeProvider = timeProvider ?? TimeProvider.System;
        _retryTimers = new RetryTimers<QueuedJob>(_timeProvider, Route);

        // The channels are unbounded because capacity is enforced once, globally, by _queueSpace: a retry or a replay
        // must be able to go back without waiting (a timer callback cannot wait), and QueueCapacity means the whole
        // backlog, not each lane's.
        _unordered = Channel.CreateUnbounded<QueuedJob>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
        _lanes = new KeyLanes<QueuedJob>(RunKeyedToEndAsync, _stopping.Token);

        _queueSpace = new SemaphoreSlim(capacity, capacity);
        _metrics = new ChatScaleMetrics(meterFactory);
        _metrics.ObserveDispatcherBacklog(_backlog.Snapshot);
        _attempts = new InMemoryAttempts(
            new JobAttemptRunner(scopeFactory, _timeProvider), retry, _backlog, _metrics, _logger, _timeProvider, new SemaphoreSlim(_workerCount, _workerCount), _aborting.Token);

        static int Positive(int value, string name) => value > 0
            ? value
            : throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)}:{name} must be greater than 0 (was {value}).", nameof(options));
    }

    /// <inheritdoc />
    /// <remarks>
    /// Completes synchronously while there is queue space. The job is kept by reference: don't mutate it after
    /// enqueueing. Jobs enqueued after <see cref="StopAsync"/> are accepted but never run.
    /// </remarks>
    /// <exception cref="ObjectDisposedException">The dispatcher was disposed.</exception>
    public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
        where TJob : notnull
    {
        ArgumentNullException.ThrowIfNull(job);
        ObjectDisposedException.ThrowIf(_lifecycle.IsDisposed, this);
        var registration = _registry.Find(typeof(TJob), job.GetType());
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<string>(cancellationToken);
        }

        return _queueSpace.Wait(0, CancellationToken.None)
            ? new ValueTask<string>(Accept(registration, job, orderingKey))
            : WaitForSpaceAsync(registration, job, orderingKey, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxCount);
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult<IReadOnlyList<DeadLetteredJob>>(_backlog.ListDeadLetters(maxCount));
    }

    /// <inheritdoc />
    /// <remarks>
    /// A replayed job keeps its id and gets a fresh attempt count; a keyed one goes to the back of its key's lane.
    /// Replays do not wait for queue space.
    /// </remarks>
    public ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_lifecycle.IsDisposed, this);
        var replayed = _backlog.TakeForReplay(jobId);
        if (replayed is null)
        {
            return ValueTask.FromResult(0);
        }

        foreach (var job in replayed)
        {
            job.Attempts = 0;
            Route(job);
        }

        CoreLog.JobsReplayed(_logger, replayed.Count);
        return ValueTask.FromResult(replayed.Count);
    }

    /// <inheritdoc />
    public ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(_backlog.PurgeDeadLetters());
    }

    /// <inheritdoc />
    /// <remarks>Pending includes jobs waiting for a retry and jobs left undone by <see cref="StopAsync"/>.</remarks>
    public ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(_backlog.Snapshot());
    }

    /// <summary>Starts the lanes and workers; jobs already enqueued start running.</summary>
    /// <param name="cancellationToken">Not used: starting does not wait.</param>
    /// <returns>A completed task.</returns>
    /// <exception cref="InvalidOperationException">The dispatcher was already started (a stopped one cannot be restarted).</exception>
    /// <exception cref="ObjectDisposedException">The dispatcher was disposed.</exception>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _lifecycle.Start(this, "The in-memory background dispatcher", () =>
        {
            var loops = new Task[_workerCount];
            for (var i = 0; i < loops.Length; i++)
            {
                loops[i] = Task.Run(RunWorkerAsync, CancellationToken.None);
            }

            _loops = loops;
            _lanes.Start();
        });

        CoreLog.DispatcherStarted(_logger, _workerCount, _partitions, _backlog.Snapshot().Pending);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops taking jobs, then waits for running handlers. When <paramref name="cancellationToken"/> fires (the host's
    /// shutdown deadline), the handlers' cancellation token is signalled and this returns; an interrupted job stays
    /// pending. Jobs not finished remain counted as pending and are lost when the process exits.
    /// </summary>
    /// <param name="cancellationToken">The host's shutdown deadline.</param>
    /// <returns>A task that completes when the handlers have finished or the deadline has passed.</returns>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_lifecycle.BeginStop())
        {
            return;
        }

        var loops = Volatile.Read(ref _loops);
        await _stopping.CancelAsync().ConfigureAwait(false);
        using (cancellationToken.Register(static state => ((CancellationTokenSource)state!).Cancel(), _aborting))
        {
            try
            {
                await Task.WhenAll(Task.WhenAll(loops), _lanes.WhenIdle()).WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Deadline passed: handlers have been told to stop; their loops end as soon as they return, and
                // DisposeAsync waits for that.
            }
        }

        var pending = _backlog.Snapshot().Pending;
        if (pending > 0)
        {
            CoreLog.DispatcherStoppedWithPending(_logger, pending);
        }
    }

    /// <summary>
    /// Cancels running handlers, waits up to 5 seconds for them to return, and releases timers and metrics. Pending
    /// jobs are dropped. Enqueueing afterwards throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    /// <returns>A task that completes when everything is released.</returns>
    public async ValueTask DisposeAsync()
    {
        if (!_lifecycle.BeginDispose())
        {
            return;
        }

        var loops = Volatile.Read(ref _loops);

        await _disposing.CancelAsync().ConfigureAwait(false);
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _aborting.CancelAsync().ConfigureAwait(false);
        await _retryTimers.DisposeAsync().ConfigureAwait(false);
        var loopsDone = Task.WhenAll(Task.WhenAll(loops), _lanes.WhenIdle());
        try
        {
            await loopsDone.WaitAsync(DisposeGracePeriod).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!loopsDone.IsCompleted)
        {
            // A handler ignoring its cancellation token keeps its loop alive; disposal must not hang the process's
            // exit on it. A loop failure is logged by the loop itself; this continuation only observes it.
            _ = loopsDone.ContinueWith(
                static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        catch (Exception ex) when (ex is not TimeoutException)
        {
            // Already logged by the failing loop (and thrown to StopAsync); disposal must not fail because of it.
        }

        _metrics.Dispose();
    }

    private async ValueTask<string> WaitForSpaceAsync(JobTypeRegistration registration, object job, string? orderingKey, CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
        try
        {
            await _queueSpace.WaitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ObjectDisposedException(GetType().FullName, "The dispatcher was disposed while the job waited for queue space.");
        }

        return Accept(registration, job, orderingKey);
    }

    private string Accept(JobTypeRegistration registration, object job, string? orderingKey)
    {
        var queued = new QueuedJob(
            Guid.CreateVersion7().ToString("N"), registration, job, orderingKey, _timeProvider.GetUtcNow(), Activity.Current?.Context ?? default)
        {
            HoldsQueueSpace = true,
        };
        _backlog.Accepted();
        Route(queued);
        return queued.Id;
    }

    private void Route(QueuedJob job)
    {
        // Unbounded and never completed: the write cannot fail.
        if (job.OrderingKey is not null)
        {
            _lanes.Add(job.OrderingKey, job);
            return;
        }

        var written = _unordered.Writer.TryWrite(job);
        Debug.Assert(written, "Dispatcher channels are unbounded and never completed.");
    }

    private void ReleaseQueueSpace(QueuedJob job)
    {
        if (job.HoldsQueueSpace)
        {
            job.HoldsQueueSpace = false;
            _queueSpace.Release();
        }
    }

    /// <summary>Runs one keyed job to its end, retrying it in place: the key's later jobs wait, other keys don't.</summary>
    private async Task<bool> RunKeyedToEndAsync(QueuedJob job, CancellationToken stopping)
    {
        try
        {
            ReleaseQueueSpace(job);
            var outcome = await _attempts.RunAsync(job, stopping).ConfigureAwait(false);
            while (outcome.Retry)
            {
                await Task.Delay(outcome.Delay, _timeProvider, stopping).ConfigureAwait(false);
                outcome = await _attempts.RunAsync(job, stopping).ConfigureAwait(false);
            }

            return true;
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            return false; // stopping: the job stays counted as pending
        }
        catch (Exception ex)
        {
            CoreLog.DispatcherLoopFailed(_logger, ex);
            throw;
        }
    }

    private async Task RunWorkerAsync()
    {
        var stopping = _stopping.Token;
        var reader = _unordered.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stopping).ConfigureAwait(false))
            {
                while (!stopping.IsCancellationRequested && reader.TryRead(out var job))
                {
                    ReleaseQueueSpace(job);
                    var outcome = await _attempts.RunAsync(job, stopping).ConfigureAwait(false);
                    if (outcome.Retry)
                    {
                        ScheduleRetry(job, outcome.Delay);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopping: whatever is left stays counted as pending.
        }
        catch (Exception ex)
        {
            CoreLog.DispatcherLoopFailed(_logger, ex);
            throw;
        }
    }

    private void ScheduleRetry(QueuedJob job, TimeSpan delay)
    {
        if (_lifecycle.IsDisposed || !_retryTimers.Schedule(job, delay))
        {
            Route(job);
        }
    }
}
