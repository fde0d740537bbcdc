using System.Collections.Concurrent;

namespace ChatScale.Dispatching;

/// <summary>
/// Holds jobs that wait for their retry, off any worker, and hands each back when its delay is over: shared by the
/// dispatchers' unkeyed queues so the scheduling cannot drift apart. A keyed job waits in its lane instead. Thread-safe.
/// </summary>
/// <typeparam name="TJob">The waiting job.</typeparam>
public sealed class RetryTimers<TJob> : IAsyncDisposable
    where TJob : class
{
    private readonly TimeProvider _time;
    private readonly Action<TJob> _due;
    private readonly ConcurrentDictionary<TJob, ITimer> _timers = new(ReferenceEqualityComparer.Instance);
    private volatile bool _disposed;

    /// <summary>Creates the timers.</summary>
    /// <param name="time">The clock the delays run on.</param>
    /// <param name="due">Called (on a timer thread) with each job whose delay is over; must not block.</param>
    public RetryTimers(TimeProvider time, Action<TJob> due)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(due);
        _time = time;
        _due = due;
    }

    /// <summary>How many jobs wait.</summary>
    public int Count => _timers.Count;

    /// <summary>Hands <paramref name="job"/> back after <paramref name="delay"/> (at once, on this thread, when not positive).</summary>
    /// <param name="job">The job; at most one wait per job at a time.</param>
    /// <param name="delay">How long it waits.</param>
    /// <returns><see langword="false"/> when the timers were disposed: the job was not taken.</returns>
    public bool Schedule(TJob job, TimeSpan delay)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (_disposed)
        {
            return false;
        }

        if (delay <= TimeSpan.Zero)
        {
            _due(job);
            return true;
        }

        // Registered before it is armed, so a callback firing at once always finds (and removes) its timer.
        var timer = _time.CreateTimer(static state => ((State)state!).Fire(), new State(this, job), Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timers[job] = timer;
        timer.Change(delay, Timeout.InfiniteTimeSpan);
        return true;
    }

    /// <summary>Cancels every wait: the jobs still waiting are never handed back.</summary>
    /// <returns>A task that completes when every timer is released.</returns>
    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var pair in _timers)
        {
            if (_timers.TryRemove(pair.Key, out var timer))
            {
                await timer.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private sealed class State(RetryTimers<TJob> owner, TJob job)
    {
        public void Fire()
        {
            if (owner._timers.TryRemove(job, out var timer))
            {
                timer.Dispose();
                owner._due(job);
            }
        }
    }
}
