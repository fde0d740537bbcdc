namespace ChatScale.InMemory;

/// <summary>
/// What <see cref="InMemoryBackgroundDispatcher"/> holds: how many jobs are pending and in flight, and the dead
/// letters. The two counters are packed in one value (low 32 bits pending, high 32 bits in flight), so a job moving
/// between them is never seen in neither or both; moves to and from the dead letters happen under the lock a
/// snapshot takes, so a job is always counted exactly once. Thread-safe.
/// </summary>
internal sealed class InMemoryBacklog
{
    private const long OnePending = 1;
    private const long OneInFlight = 1L << 32;

    private readonly Lock _lock = new();
    private readonly List<(QueuedJob Job, DeadLetteredJob Record)> _deadLetters = [];
    private long _counts;

    /// <summary>A job was accepted: pending.</summary>
    public void Accepted() => Interlocked.Add(ref _counts, OnePending);

    /// <summary>An attempt started: pending → in flight.</summary>
    public void Started() => Interlocked.Add(ref _counts, OneInFlight - OnePending);

    /// <summary>An attempt was interrupted or will be retried: in flight → pending.</summary>
    public void Returned() => Interlocked.Add(ref _counts, OnePending - OneInFlight);

    /// <summary>An attempt succeeded: the job is done.</summary>
    public void Succeeded() => Interlocked.Add(ref _counts, -OneInFlight);

    /// <summary>The last attempt failed: in flight → dead letters.</summary>
    public void DeadLettered(QueuedJob job, DeadLetteredJob record)
    {
        lock (_lock)
        {
            _deadLetters.Add((job, record));
            Interlocked.Add(ref _counts, -OneInFlight);
        }
    }

    public DeadLetteredJob[] ListDeadLetters(int maxCount)
    {
        lock (_lock)
        {
            var result = new DeadLetteredJob[Math.Min(maxCount, _deadLetters.Count)];
            for (var i = 0; i < result.Length; i++)
            {
                result[i] = _deadLetters[i].Record;
            }

            return result;
        }
    }

    /// <summary>Takes the dead letters to replay (all, or the one with <paramref name="jobId"/>), counted pending again.</summary>
    public List<QueuedJob>? TakeForReplay(string? jobId)
    {
        lock (_lock)
        {
            List<QueuedJob>? replayed = null;
            for (var i = 0; i < _deadLetters.Count; i++)
            {
                if (jobId is null || string.Equals(_deadLetters[i].Job.Id, jobId, StringComparison.Ordinal))
                {
                    (replayed ??= []).Add(_deadLetters[i].Job);
                }
            }

            if (replayed is null)
            {
                return null;
            }

            _deadLetters.RemoveAll(entry => jobId is null || string.Equals(entry.Job.Id, jobId, StringComparison.Ordinal));

            // Counted pending under the same lock that removed them, so no snapshot misses them.
            Interlocked.Add(ref _counts, replayed.Count * OnePending);
            return replayed;
        }
    }

    public int PurgeDeadLetters()
    {
        lock (_lock)
        {
            var count = _deadLetters.Count;
            _deadLetters.Clear();
            return count;
        }
    }

    public DispatcherStatistics Snapshot()
    {
        lock (_lock)
        {
            var counts = Interlocked.Read(ref _counts);
            return new DispatcherStatistics(counts & 0xFFFF_FFFF, counts >> 32, _deadLetters.Count);
        }
    }
}
