using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Settles jobs of one stream (a partition during one lease tenure, or the shared stream): acks finished jobs in
/// batches (every job finished while one ack script is in flight goes in the next), records retries and moves jobs to
/// the dead letters, each in one fenced script. A settle that fails for any reason (Redis unreachable, <c>READONLY</c>
/// during a failover, a timeout) is retried while this instance may still settle the job; only a refused lease ends it.
/// </summary>
/// <remarks>
/// <b>Carried acks.</b> Given a carrier signal, the settler sends no ack script of its own: it gathers finished jobs
/// and signals the partition's reader, which sends them with its next read in one script
/// (<see cref="DispatcherScripts.CompleteAndRead"/>: <see cref="TakeAcks"/>, then <see cref="Settled"/> or
/// <see cref="PutBack"/>). When the reader ends, <see cref="StopCarrying"/> hands the acks of the handlers still
/// running back to the settler's own batches.
/// </remarks>
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
    private List<PendingAck> _batch = [];
    private Signal? _carrier;
    private bool _flushing;

    public JobSettler(DispatcherRuntime runtime, RedisKey stream, RedisKey attempts, RedisKey dead, PartitionLease? lease, Signal? carrier = null)
    {
        _runtime = runtime;
        _carrier = carrier;
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
        Signal? carrier;
        lock (_lock)
        {
            _batch.Add(new PendingAck(job.EntryId, job.Attempts > 1, done));
            carrier = _carrier;
            start = StartsFlush();
        }

        carrier?.Set();
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

    /// <summary>For a carrier: takes the finished jobs gathered so far (at most one batch), or null when there are none.</summary>
    public List<PendingAck>? TakeAcks()
    {
        lock (_lock)
        {
            return TakeBatch();
        }
    }

    /// <summary>
    /// Writes a batch's entry ids into <paramref name="args"/> from <paramref name="at"/> on, those with an attempt
    /// record first (so the script deletes only those records); returns how many have one.
    /// </summary>
    public static int WriteIds(List<PendingAck> batch, RedisValue[] args, int at)
    {
        var withRecord = 0;
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

        return withRecord;
    }

    /// <summary>For a carrier: the batch was acked (true) or refused by the lease (false); tells every waiter.</summary>
    public static void Settled(List<PendingAck> batch, bool acked)
    {
        foreach (var item in batch)
        {
            item.Done.TrySetResult(acked);
        }
    }

    /// <summary>
    /// For a carrier: a batch it did not send (held for the next read) or whose script failed (acks are idempotent)
    /// goes back first; the carrier sends it with its next round, or this settler once the carrier has stopped.
    /// </summary>
    public void PutBack(List<PendingAck> batch)
    {
        lock (_lock)
        {
            _batch.InsertRange(0, batch);
        }
    }

    /// <summary>The carrier has ended: from now on acks are sent by the settler itself, starting with those gathered.</summary>
    public void StopCarrying()
    {
        bool start;
        lock (_lock)
        {
            _carrier = null;
            start = StartsFlush();
        }

        if (start)
        {
            _ = FlushAsync();
        }
    }

    /// <summary>Under the lock: whether the caller starts the settler's own flush (no carrier, none running, acks waiting).</summary>
    private bool StartsFlush()
    {
        var start = _carrier is null && !_flushing && _batch.Count > 0;
        _flushing |= start;
        return start;
    }

    private List<PendingAck>? TakeBatch()
    {
        if (_batch.Count == 0)
        {
            return null;
        }

        List<PendingAck> batch;
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

        return batch;
    }

    private async Task FlushAsync()
    {
        while (true)
        {
            List<PendingAck>? batch;
            lock (_lock)
            {
                batch = _carrier is null ? TakeBatch() : null;
                if (batch is null)
                {
                    _flushing = false;
                    return;
                }
            }

            var args = new RedisValue[batch.Count + 3];
            args[0] = _leaseValue;
            args[1] = DispatcherScripts.Group;
            args[2] = WriteIds(batch, args, 3);

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

            Settled(batch, acked);
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

/// <summary>A finished job waiting for its ack, and the attempt waiting for the answer.</summary>
internal readonly record struct PendingAck(RedisValue Id, bool HasRecord, TaskCompletionSource<bool> Done);
