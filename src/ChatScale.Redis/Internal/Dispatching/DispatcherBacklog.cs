using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// The backlog figures behind <see cref="RedisStreamDispatcher.GetStatisticsAsync"/> and the lag gauges: the length
/// of every job stream and dead-letter stream, read in one pipelined round (refreshed by the coordinator every
/// third of the lease TTL, and on demand).
/// </summary>
internal sealed class DispatcherBacklog
{
    private readonly DispatcherRuntime _runtime;
    private readonly RedisKey[] _jobs;
    private readonly RedisKey[] _dead;
    private readonly long[] _lags;
    private long _pending;
    private long _deadLettered;

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
    }

    /// <summary>Unfinished jobs per partition stream; the last is the shared stream.</summary>
    public IReadOnlyList<long> Lags => _lags;

    public DispatcherStatistics Snapshot()
    {
        var inFlight = _runtime.InFlight;
        return new DispatcherStatistics(Math.Max(0, Volatile.Read(ref _pending) - inFlight), inFlight, Volatile.Read(ref _deadLettered));
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
    }
}
