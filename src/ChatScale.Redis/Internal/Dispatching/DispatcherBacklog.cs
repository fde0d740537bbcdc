using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// The backlog figures behind <see cref="RedisStreamDispatcher.GetStatisticsAsync"/> and the backlog gauges: the
/// length of every job stream and dead-letter stream, read in one pipelined round. Read on demand only: by
/// <see cref="RedisStreamDispatcher.GetStatisticsAsync"/> (a health check), and when a metrics listener observes a
/// gauge whose figures are older than <see cref="RefreshPeriod"/> (then in the background; the gauge reports the last
/// figures). A node whose backlog nobody looks at sends no <c>XLEN</c> at all.
/// </summary>
internal sealed class DispatcherBacklog
{
    private readonly DispatcherRuntime _runtime;
    private readonly RedisKey[] _jobs;
    private readonly RedisKey[] _dead;
    private readonly long[] _lags;
    private readonly long _refreshTicks;
    private long _pending;
    private long _deadLettered;
    private long _refreshedAt = long.MinValue;
    private int _refreshing;

    public DispatcherBacklog(DispatcherRuntime runtime)
    {
        _runtime = runtime;
        _jobs = new RedisKey[runtime.Partitions + 1];
        _dead = new RedisKey[runtime.Partitions + 1];
        for (var i = 0; i < runtime.Partitions; i++)
        {
            _jobs[i] = runtime.Keys.Partition(i, "jobs");
            _dead[i] = runtime.Keys.Partition(i, "dead");
        }

        _jobs[^1] = runtime.Keys.SharedJobs;
        _dead[^1] = runtime.Keys.SharedDeadLetters;
        _lags = new long[runtime.Partitions + 1];
        _refreshTicks = (long)(RefreshPeriod.TotalSeconds * runtime.Time.TimestampFrequency);
    }

    /// <summary>How old the figures a gauge reports may be before observing it starts a refresh: a third of the lease TTL.</summary>
    public TimeSpan RefreshPeriod => _runtime.LeaseTtl / 3;

    public DispatcherStatistics Snapshot()
    {
        var inFlight = _runtime.InFlight;
        return new DispatcherStatistics(Math.Max(0, Volatile.Read(ref _pending) - inFlight), inFlight, Volatile.Read(ref _deadLettered));
    }

    /// <summary>For a gauge: the last figures, and a background refresh when they are stale.</summary>
    public DispatcherStatistics Observe()
    {
        RefreshIfStale();
        return Snapshot();
    }

    /// <summary>For the lag gauge: unfinished jobs per partition stream (the last is the shared stream), as last read.</summary>
    public IReadOnlyList<long> ObserveLags()
    {
        RefreshIfStale();
        return _lags;
    }

    public async Task RefreshAsync()
    {
        var db = _runtime.Database;
        var lengths = new Task<long>[_jobs.Length * 2];
        for (var i = 0; i < _jobs.Length; i++)
        {
            lengths[i] = db.StreamLengthAsync(_jobs[i]);
            lengths[_jobs.Length + i] = db.StreamLengthAsync(_dead[i]);
        }

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

        long pending = 0, dead = 0;
        for (var i = 0; i < _jobs.Length; i++)
        {
            var value = lengths[i].Result;
            Volatile.Write(ref _lags[i], value);
            pending += value;
            dead += lengths[_jobs.Length + i].Result;
        }

        Volatile.Write(ref _pending, pending);
        Volatile.Write(ref _deadLettered, dead);
        Volatile.Write(ref _refreshedAt, _runtime.Time.GetTimestamp());
    }

    private void RefreshIfStale()
    {
        var refreshedAt = Volatile.Read(ref _refreshedAt);
        if ((refreshedAt != long.MinValue && _runtime.Time.GetTimestamp() - refreshedAt < _refreshTicks)
            || Interlocked.Exchange(ref _refreshing, 1) == 1)
        {
            return;
        }

        _ = RefreshInBackgroundAsync(); // observed: it catches everything
    }

    private async Task RefreshInBackgroundAsync()
    {
        try
        {
            await RefreshAsync().ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Whatever failed (Redis unreachable, the connection disposed), the gauges keep the last figures and the
            // next observation tries again; nothing waits for this task.
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
    }
}
