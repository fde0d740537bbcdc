using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Settles jobs of one stream (a partition during one lease tenure, or the shared stream): acks finished jobs in
/// batches (every job finished while one ack script is in flight goes in the next), records retries and moves jobs to
/// the dead letters, each in one fenced script. A settle that fails for any reason (Redis unreachable, <c>READONLY</c>
/// during a failover, a timeout) is retried while this instance may still settle the job; only a refused lease ends it.
/// </summary>
internal sealed class JobSettler
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(2);
    private const int MaxBatch = 256;

    private readonly DispatcherRuntime _runtime;
    private readonly RedisKey[] _completeKeys;
    private readonly RedisKey[] _deadKeys;
    private readonly PartitionLease? _lease;
    private readonly RedisValue _leaseValue;
    private readonly Lock _lock = new();
    private List<(RedisValue Id, bool HasRecord, TaskCompletionSource<bool> Done)> _batch = [];
    private bool _flushing;

    public JobSettler(DispatcherRuntime runtime, RedisKey stream, RedisKey attempts, RedisKey dead, PartitionLease? lease)
    {
        _runtime = runtime;
        _lease = lease;
        _leaseValue = lease?.Value ?? RedisValue.EmptyString;
        _completeKeys = lease is null ? [stream, attempts] : [stream, attempts, runtime.Keys.Partition(lease.Partition, "lease")];
        _deadKeys = lease is null ? [stream, attempts, dead] : [stream, attempts, dead, _completeKeys[2]];
    }

    /// <summary>Acks and deletes a finished job; false when the lease was refused (the next owner runs it again).</summary>
    public Task<bool> CompleteAsync(StreamJob job)
    {
        var done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        bool start;
        lock (_lock)
        {
            _batch.Add((job.EntryId, job.Attempts > 1, done));
            start = !_flushing;
            _flushing = true;
        }

        if (start)
        {
            // Inline up to the script's send (no thread hop); later rounds run on the reply's continuation.
            _ = FlushAsync(); // observed: it catches everything and answers every waiter
        }

        return done.Task;
    }

    /// <summary>Stores the attempt count and next-attempt time with the entry; false when the lease was refused.</summary>
    public async Task<bool> RetryAsync(StreamJob job, int attempts, TimeSpan delay)
        => await RunAsync(DispatcherScripts.Retry, _completeKeys, [_leaseValue, job.EntryId, attempts, (long)delay.TotalMilliseconds], job.EntryId).ConfigureAwait(false) >= 0;

    /// <summary>Moves the job to the dead letters with its attempts and error; false when the lease was refused.</summary>
    public async Task<bool> DeadLetterAsync(StreamJob job, int attempts, string error)
        => await RunAsync(DispatcherScripts.DeadLetter, _deadKeys, [_leaseValue, DispatcherScripts.Group, job.EntryId, attempts, error], job.EntryId).ConfigureAwait(false) >= 0;

    private async Task FlushAsync()
    {
        while (true)
        {
            List<(RedisValue Id, bool HasRecord, TaskCompletionSource<bool> Done)> batch;
            lock (_lock)
            {
                if (_batch.Count == 0)
                {
                    _flushing = false;
                    return;
                }

                if (_batch.Count <= MaxBatch)
                {
                    batch = _batch;
                    _batch = [];
                }
                else
                {
                    batch = _batch.GetRange(0, MaxBatch);
                    _batch.RemoveRange(0, MaxBatch);
                }
            }

            // Entries with an attempt record (retried before) first, so the script deletes only those records.
            var args = new RedisValue[batch.Count + 3];
            args[0] = _leaseValue;
            args[1] = DispatcherScripts.Group;
            int withRecord = 0, at = 3;
            foreach (var item in batch)
            {
                if (item.HasRecord)
                {
                    args[at++] = item.Id;
                    withRecord++;
                }
            }

            foreach (var item in batch)
            {
                if (!item.HasRecord)
                {
                    args[at++] = item.Id;
                }
            }

            args[2] = withRecord;

            bool acked;
            try
            {
                acked = await RunAsync(DispatcherScripts.Complete, _completeKeys, args, batch[0].Id).ConfigureAwait(false) >= 0;
            }
            catch (Exception ex)
            {
                // Not a Redis failure (those are retried inside): the jobs stay pending for whoever owns them next,
                // and their lanes learn it, rather than waiting for an answer that never comes.
                RedisLog.DispatcherLoopFailed(_runtime.Logger, ex);
                acked = false;
            }

            foreach (var (_, _, done) in batch)
            {
                done.TrySetResult(acked);
            }
        }
    }

    /// <summary>Runs a settle script until it gets through; the script's result, or -1 when refused or given up.</summary>
    private async Task<long> RunAsync(string script, RedisKey[] keys, RedisValue[] args, RedisValue entryId)
    {
        var delay = FirstRetryDelay;
        while (true)
        {
            try
            {
                var result = (long)await _runtime.Database.ScriptEvaluateAsync(script, keys, args).ConfigureAwait(false);
                if (result == DispatcherScripts.LeaseLost && _lease is not null)
                {
                    RedisLog.FencedRefused(_runtime.Logger, _runtime.InstanceId, "settle", _lease.Partition);
                    _lease.Lose();
                }

                return result;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
            {
                // Retried whatever the error (unreachable, READONLY, a timeout after the script ran: every script
                // here is idempotent), while the job is still ours to settle.
                if ((_lease is not null && !_lease.IsValid) || _runtime.Aborting.IsCancellationRequested || ex is ObjectDisposedException)
                {
                    return DispatcherScripts.LeaseLost;
                }

                RedisLog.SettleFailed(_runtime.Logger, ex, (string)entryId!, delay);
                try
                {
                    await Task.Delay(delay, _runtime.Time, _lease?.Lost ?? _runtime.Aborting.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return DispatcherScripts.LeaseLost;
                }

                delay = delay * 2 > LongestRetryDelay ? LongestRetryDelay : delay * 2;
            }
        }
    }
}
