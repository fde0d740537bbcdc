using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// The dead letters: one stream per partition (in the partition's slot, so dead-lettering and replay are single
/// atomic scripts) and one for unkeyed jobs. Listing merges them oldest first; a replayed job goes back to the job
/// stream it came from, keeping its id and its key (an empty key too).
/// </summary>
internal sealed class DeadLetterStore
{
    private const int Page = 100;
    private readonly DispatcherRuntime _runtime;

    public DeadLetterStore(DispatcherRuntime runtime) => _runtime = runtime;

    public async Task<IReadOnlyList<DeadLetteredJob>> ListAsync(int maxCount, CancellationToken cancellationToken)
    {
        var db = _runtime.Database;
        var streams = DeadStreams();
        var reads = new Task<StreamEntry[]>[streams.Length];
        for (var i = 0; i < streams.Length; i++)
        {
            reads[i] = db.StreamRangeAsync(streams[i].Dead, "-", "+", maxCount);
        }

        await Observed(Task.WhenAll(reads), reads, cancellationToken).ConfigureAwait(false);
        var all = new List<(long Dead, DeadLetteredJob Job)>();
        foreach (var read in reads)
        {
            foreach (var entry in read.Result)
            {
                if (entry.IsNull)
                {
                    continue;
                }

                var job = StreamJob.Decode(entry.Id, (byte[]?)entry[StreamJob.Field], registry: null);
                var dead = (long)entry["dead"];
                all.Add((dead, new DeadLetteredJob(
                    job.JobId, job.TypeName, job.Key, (int)entry["attempts"], (string?)entry["error"] ?? string.Empty, job.EnqueuedAt, DateTimeOffset.FromUnixTimeMilliseconds(dead))));
            }
        }

        all.Sort(static (a, b) => a.Dead.CompareTo(b.Dead));
        var result = new List<DeadLetteredJob>(Math.Min(maxCount, all.Count));
        for (var i = 0; i < all.Count && i < maxCount; i++)
        {
            result.Add(all[i].Job);
        }

        return result;
    }

    /// <summary>Replays the jobs dead-lettered before the call (or the one with <paramref name="jobId"/>); returns how many.</summary>
    public async Task<(int Replayed, List<int> Partitions)> ReplayAsync(string? jobId, CancellationToken cancellationToken)
    {
        var db = _runtime.Database;
        var replayed = 0;
        var partitions = new List<int>();
        foreach (var (partition, dead, jobs) in DeadStreams())
        {
            var last = await RedisFailures.WaitAsync(db.StreamRangeAsync(dead, "-", "+", 1, Order.Descending), cancellationToken).ConfigureAwait(false);
            if (last.Length == 0)
            {
                continue;
            }

            var end = last[0].Id;
            RedisValue start = "-";
            while (true)
            {
                var page = await RedisFailures.WaitAsync(db.StreamRangeAsync(dead, start, end, Page), cancellationToken).ConfigureAwait(false);
                foreach (var entry in page)
                {
                    if (jobId is not null && !string.Equals(StreamJob.Decode(entry.Id, (byte[]?)entry[StreamJob.Field], null).JobId, jobId, StringComparison.Ordinal))
                    {
                        continue;
                    }

                    if ((long)await RedisFailures.WaitAsync(db.ScriptEvaluateAsync(DispatcherScripts.Replay, [dead, jobs], [entry.Id]), cancellationToken).ConfigureAwait(false) == 1)
                    {
                        replayed++;
                        partitions.Add(partition);
                    }
                }

                if (page.Length < Page)
                {
                    break;
                }

                start = "(" + (string)page[^1].Id!;
            }
        }

        if (replayed > 0)
        {
            RedisLog.JobsReplayed(_runtime.Logger, replayed);
        }

        return (replayed, partitions);
    }

    public async Task<int> PurgeAsync(CancellationToken cancellationToken)
    {
        var total = 0;
        foreach (var (_, dead, _) in DeadStreams())
        {
            total += (int)(long)await RedisFailures.WaitAsync(_runtime.Database.ScriptEvaluateAsync(DispatcherScripts.Purge, [dead]), cancellationToken).ConfigureAwait(false);
        }

        return total;
    }

    private (int Partition, RedisKey Dead, RedisKey Jobs)[] DeadStreams()
    {
        var streams = new (int, RedisKey, RedisKey)[_runtime.Partitions + 1];
        for (var i = 0; i < _runtime.Partitions; i++)
        {
            streams[i] = (i, _runtime.Keys.Partition(i, "dead"), _runtime.Keys.Partition(i, "jobs"));
        }

        streams[^1] = (-1, _runtime.Keys.SharedDeadLetters, _runtime.Keys.SharedJobs);
        return streams;
    }

    private static async Task Observed(Task all, Task[] parts, CancellationToken cancellationToken)
    {
        try
        {
            await all.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (var part in parts)
            {
                RedisFailures.Observe(part);
            }

            throw;
        }
    }
}
