namespace ChatScale.InMemory;

/// <summary>
/// One lane per ordering key: a key's jobs run one at a time in arrival order (a failing one is retried in place, so
/// the key's later jobs wait for it), while every other key goes on. A lane's loop exists only while its key has jobs,
/// so idle keys cost nothing. Thread-safe.
/// </summary>
/// <typeparam name="TJob">The queued job.</typeparam>
internal sealed class KeyLanes<TJob>(Func<TJob, CancellationToken, Task> runToEnd, CancellationToken stopping)
    where TJob : class
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Queue<TJob>> _lanes = new(StringComparer.Ordinal);
    private readonly List<Task> _loops = [];
    private bool _started;

    /// <summary>Queues <paramref name="job"/> behind the other jobs of <paramref name="key"/>.</summary>
    public void Add(string key, TJob job)
    {
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

    /// <summary>The loops still running (they end when their key has no job left, or on stopping).</summary>
    public Task WhenIdle()
    {
        lock (_lock)
        {
            _loops.RemoveAll(static t => t.IsCompleted);
            return Task.WhenAll(_loops);
        }
    }

    private void StartLoop(string key, Queue<TJob> lane)
    {
        _loops.RemoveAll(static t => t.IsCompleted);
        using (ExecutionContext.SuppressFlow())
        {
            _loops.Add(Task.Run(() => RunAsync(key, lane), CancellationToken.None));
        }
    }

    private async Task RunAsync(string key, Queue<TJob> lane)
    {
        while (true)
        {
            TJob job;
            lock (_lock)
            {
                if (stopping.IsCancellationRequested)
                {
                    return; // what is left stays queued (and counted pending)
                }

                if (lane.Count == 0)
                {
                    _lanes.Remove(key);
                    return;
                }

                job = lane.Peek();
            }

            await runToEnd(job, stopping).ConfigureAwait(false);
            lock (_lock)
            {
                if (stopping.IsCancellationRequested)
                {
                    return; // interrupted: the job stays at the head of its lane
                }

                lane.Dequeue();
            }
        }
    }
}
