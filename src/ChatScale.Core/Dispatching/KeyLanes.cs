namespace ChatScale.Dispatching;

/// <summary>
/// One lane per ordering key, shared by every dispatcher (in memory, and inside each Redis partition): a key's jobs
/// run one at a time in the order they were added, while every other key goes on, so a retrying or flooded key holds
/// back only itself. A lane's loop exists only while its key has jobs, so idle keys cost nothing. Thread-safe.
/// </summary>
/// <remarks>
/// A job stays at the head of its lane while <c>runToEnd</c> runs it (retries included) and is taken off when it
/// returns <see langword="true"/> (done). When it returns <see langword="false"/> (not done: interrupted, or its
/// runner may no longer run it), or the stopping token was cancelled by then, the job stays at the head and the lane
/// ends without starting the key's next job. <c>runToEnd</c> should not throw; if it does, the key's lane ends (the
/// key can start a new one) and the exception surfaces from <see cref="WhenIdle"/>.
/// </remarks>
/// <typeparam name="TJob">The queued job.</typeparam>
public sealed class KeyLanes<TJob>
    where TJob : class
{
    private readonly Func<TJob, CancellationToken, Task<bool>> _runToEnd;
    private readonly CancellationToken _stopping;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Queue<TJob>> _lanes = new(StringComparer.Ordinal);
    private List<Exception>? _faults;
    private TaskCompletionSource? _idle;
    private int _running;
    private bool _started;

    /// <summary>Creates the lanes; no loop runs until <see cref="Start"/>.</summary>
    /// <param name="runToEnd">Runs one job to its end (its attempts and retries); <see langword="true"/> when the job is done.</param>
    /// <param name="stopping">When cancelled, lanes end after their current job and leave the rest queued.</param>
    public KeyLanes(Func<TJob, CancellationToken, Task<bool>> runToEnd, CancellationToken stopping)
    {
        ArgumentNullException.ThrowIfNull(runToEnd);
        _runToEnd = runToEnd;
        _stopping = stopping;
    }

    /// <summary>Queues <paramref name="job"/> behind the other jobs of <paramref name="key"/>, starting its lane if idle.</summary>
    /// <param name="key">The ordering key.</param>
    /// <param name="job">The job.</param>
    public void Add(string key, TJob job)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(job);
        lock (_lock)
        {
            if (_lanes.TryGetValue(key, out var lane))
            {
                lane.Enqueue(job);
                return;
            }

            lane = new Queue<TJob>();
            lane.Enqueue(job);
            _lanes.Add(key, lane);
            if (_started)
            {
                StartLoop(key, lane);
            }
        }
    }

    /// <summary>Starts a loop for every key that already has jobs, and for each key that gets some later.</summary>
    public void Start()
    {
        lock (_lock)
        {
            _started = true;
            foreach (var (key, lane) in _lanes)
            {
                StartLoop(key, lane);
            }
        }
    }

    /// <summary>Completes when no lane's loop runs (each ends when its key has no job left, or on stopping).</summary>
    /// <returns>A task that completes then; faulted if a <c>runToEnd</c> threw.</returns>
    public Task WhenIdle()
    {
        lock (_lock)
        {
            if (_running > 0)
            {
                _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return _idle.Task;
            }

            return _faults is null ? Task.CompletedTask : Task.FromException(new AggregateException(_faults));
        }
    }

    private void StartLoop(string key, Queue<TJob> lane)
    {
        _running++;
        using (ExecutionContext.SuppressFlow())
        {
            _ = Task.Run(() => RunAsync(key, lane), CancellationToken.None); // observed: RunAsync never throws
        }
    }

    private async Task RunAsync(string key, Queue<TJob> lane)
    {
        Exception? fault = null;
        try
        {
            while (true)
            {
                TJob job;
                lock (_lock)
                {
                    if (_stopping.IsCancellationRequested)
                    {
                        return; // what is left stays queued
                    }

                    if (lane.Count == 0)
                    {
                        _lanes.Remove(key);
                        return;
                    }

                    job = lane.Peek();
                }

                var done = await _runToEnd(job, _stopping).ConfigureAwait(false);
                lock (_lock)
                {
                    if (!done || _stopping.IsCancellationRequested)
                    {
                        return; // not done, or stopping: the job stays at the head of its lane
                    }

                    lane.Dequeue();
                }
            }
        }
        catch (Exception ex)
        {
            fault = ex;
        }
        finally
        {
            lock (_lock)
            {
                if (fault is not null)
                {
                    (_faults ??= []).Add(fault);
                    if (_lanes.TryGetValue(key, out var current) && ReferenceEquals(current, lane))
                    {
                        _lanes.Remove(key); // a failed lane must not hold its key forever
                    }
                }

                if (--_running == 0 && _idle is { } idle)
                {
                    _idle = null;
                    if (_faults is null)
                    {
                        idle.TrySetResult();
                    }
                    else
                    {
                        idle.TrySetException(new AggregateException(_faults));
                    }
                }
            }
        }
    }
}
