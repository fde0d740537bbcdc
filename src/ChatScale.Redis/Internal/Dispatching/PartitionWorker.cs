using ChatScale.Dispatching;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Works one partition for one lease tenure. A single reader takes entries with fenced scripts (first everything
/// pending under any consumer, then new entries; and again at any time another consumer turns out to hold entries, or
/// a read's reply was lost) and hands them to <b>per-key lanes</b> (the <see cref="KeyLanes{TJob}"/> the in-memory
/// dispatcher uses too): jobs of one ordering key run one at a time in stream order, waiting for the previous one's
/// ack; different keys of the partition run in parallel (bounded by the instance's worker slots), so a retrying or
/// flooded key holds back only itself.
/// </summary>
/// <remarks>
/// The worker ends after <see cref="Drain"/> (rebalance or stop) or when its lease is lost, once every running
/// handler has returned; the coordinator renews the lease until then, and the worker releases it last.
/// </remarks>
internal sealed class PartitionWorker : IDisposable
{
    private readonly DispatcherRuntime _runtime;
    private readonly PartitionLease _lease;
    private readonly Signal _wake;
    private readonly JobSettler _settler;
    private readonly RedisKey _stream;
    private readonly RedisKey _attempts;
    private readonly RedisKey _leaseKey;
    private readonly RedisKey[] _readKeys;
    private readonly CancellationTokenSource _draining;
    private readonly CancellationTokenSource _handlers;
    private readonly Action _released;
    private readonly KeyLanes<StreamJob> _lanes;
    private readonly Lock _lock = new();
    private readonly HashSet<RedisValue> _known = []; // entries read and not finished: in a lane, running or waiting
    private readonly Signal _space = new();
    private int _running;
    private volatile bool _finished;

    public PartitionWorker(DispatcherRuntime runtime, PartitionLease lease, Signal wake, Action released)
    {
        _released = released;
        _runtime = runtime;
        _lease = lease;
        _wake = wake;
        _stream = runtime.Keys.Partition(lease.Partition, "jobs");
        _attempts = runtime.Keys.Partition(lease.Partition, "attempts");
        _leaseKey = runtime.Keys.Partition(lease.Partition, "lease");
        _readKeys = [_stream, _leaseKey];
        _settler = new JobSettler(runtime, _stream, _attempts, runtime.Keys.Partition(lease.Partition, "dead"), lease);
        _draining = CancellationTokenSource.CreateLinkedTokenSource(runtime.Stopping.Token, lease.Lost);
        _handlers = CancellationTokenSource.CreateLinkedTokenSource(runtime.Aborting.Token, lease.Lost);
        lease.Lost.Register(static state => ((PartitionWorker)state!).OnLeaseLost(), this);
        _lanes = new KeyLanes<StreamJob>(RunToEndAsync, _draining.Token);
        _lanes.Start();
    }

    public PartitionLease Lease => _lease;

    public Task Completion { get; private set; } = Task.CompletedTask;

    public int Partition => _lease.Partition;

    public void Start()
    {
        using (ExecutionContext.SuppressFlow())
        {
            Completion = Task.Run(RunAsync, CancellationToken.None);
        }
    }

    /// <summary>Stop reading and starting jobs; running handlers finish, then the lease is released.</summary>
    public void Drain()
    {
        try
        {
            _draining.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void OnLeaseLost()
    {
        var running = Volatile.Read(ref _running);
        if (!_finished)
        {
            RedisLog.PartitionLeaseLost(_runtime.Logger, running > 0 ? LogLevel.Warning : LogLevel.Debug, _runtime.InstanceId, Partition, running);
        }
    }

    private async Task RunAsync()
    {
        var draining = _draining.Token;
        try
        {
            var reclaimed = await RecoverAsync(othersOnly: false, draining).ConfigureAwait(false);
            if (reclaimed >= 0)
            {
                RedisLog.PartitionAcquired(_runtime.Logger, reclaimed > 0 ? LogLevel.Information : LogLevel.Debug, _runtime.InstanceId, Partition, _lease.Token, reclaimed);
                await _runtime.Database.ScriptEvaluateAsync(DispatcherScripts.ForgetIdleConsumers, [_stream, _leaseKey], [_lease.Value, DispatcherScripts.Group, _runtime.InstanceId]).ConfigureAwait(false);
                await ReadLoopAsync(draining).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (draining.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (DispatcherRuntime.IsUnavailable(ex))
        {
            RedisLog.WorkerRedisFailed(_runtime.Logger, ex, _runtime.LeaseTtl / 3);
        }
        catch (Exception ex)
        {
            RedisLog.DispatcherLoopFailed(_runtime.Logger, ex);
        }
        finally
        {
            Drain();
            await _lanes.WhenIdle().ConfigureAwait(false); // the reader has ended: no lane can start any more
            var release = !_runtime.Abandoned && !_lease.Lost.IsCancellationRequested;
            _finished = true;
            _lease.Lose(); // before the release: from here on this instance no longer counts as an owner
            if (release)
            {
                await ReleaseAsync().ConfigureAwait(false);
            }

            Dispose();
        }
    }

    /// <summary>Called by the worker itself when it ends.</summary>
    public void Dispose()
    {
        _draining.Dispose();
        _handlers.Dispose();
        _space.Dispose();
    }

    private async Task ReadLoopAsync(CancellationToken draining)
    {
        var recoverMine = false;
        var nextCheck = _runtime.Time.GetTimestamp();
        var checkEvery = (long)(_runtime.LeaseTtl.TotalSeconds / 3 * _runtime.Time.TimestampFrequency);
        while (!draining.IsCancellationRequested)
        {
            try
            {
                if (recoverMine)
                {
                    // A read whose reply was lost left entries pending under our name that no lane knows: take them
                    // before any newer entry, so the order per key holds.
                    if (await RecoverAsync(othersOnly: false, draining).ConfigureAwait(false) < 0)
                    {
                        return;
                    }

                    recoverMine = false;
                }
                else if (_runtime.Time.GetTimestamp() >= nextCheck)
                {
                    nextCheck = _runtime.Time.GetTimestamp() + checkEvery;
                    if (await RecoverAsync(othersOnly: true, draining).ConfigureAwait(false) < 0)
                    {
                        return;
                    }
                }

                int room;
                lock (_lock)
                {
                    room = _runtime.MaxBufferedPerPartition - _known.Count;
                }

                if (room <= 0)
                {
                    await _space.WaitAsync(_runtime.PollInterval, draining).ConfigureAwait(false);
                    continue;
                }

                var count = Math.Min(room, _runtime.ReadBatchSize);
                var reply = await _runtime.Database.ScriptEvaluateAsync(
                    DispatcherScripts.Read, _readKeys, [_lease.Value, DispatcherScripts.Group, _runtime.InstanceId, count]).ConfigureAwait(false);
                if (reply.Resp2Type == ResultType.Integer)
                {
                    RedisLog.FencedRefused(_runtime.Logger, _runtime.InstanceId, "read", Partition);
                    _lease.Lose();
                    return;
                }

                if (reply.Length == 0)
                {
                    await _wake.WaitAsync(_runtime.PollInterval, draining).ConfigureAwait(false);
                    continue;
                }

                for (var i = 0; i < reply.Length; i++)
                {
                    if (StreamJob.FromScript(reply[i], _runtime.Registry) is { } job)
                    {
                        Dispatch(job);
                    }
                }

                if (reply.Length < count)
                {
                    // The stream is drained: wait for the next wake-up (already set if a job came meanwhile) rather
                    // than paying an empty read for every job.
                    await _wake.WaitAsync(_runtime.PollInterval, draining).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (draining.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                recoverMine = true;
                RedisLog.WorkerRedisFailed(_runtime.Logger, ex, _runtime.PollInterval);
                await Task.Delay(_runtime.PollInterval, _runtime.Time, draining).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Claims pending entries into our consumer and dispatches those no lane knows; -1 when the lease is gone.</summary>
    private async Task<int> RecoverAsync(bool othersOnly, CancellationToken draining)
    {
        var count = 0;
        RedisValue cursor = "0-0";
        do
        {
            draining.ThrowIfCancellationRequested();
            var reply = await _runtime.Database.ScriptEvaluateAsync(
                DispatcherScripts.Claim,
                [_stream, _attempts, _leaseKey],
                [_lease.Value, DispatcherScripts.Group, _runtime.InstanceId, _runtime.ReadBatchSize * 4, cursor, othersOnly ? 1 : 0, 0]).ConfigureAwait(false);
            if (reply.Resp2Type == ResultType.Integer)
            {
                RedisLog.FencedRefused(_runtime.Logger, _runtime.InstanceId, "claim", Partition);
                _lease.Lose();
                return -1;
            }

            cursor = (RedisValue)reply[0];
            var entries = reply[1];
            var records = reply[2];
            var now = reply.Length > 3 ? (long)reply[3] : 0;
            for (var i = 0; i < entries.Length; i++)
            {
                if (StreamJob.FromScript(entries[i], _runtime.Registry) is not { } job)
                {
                    continue;
                }

                if (i < records.Length)
                {
                    job.ApplyRecord((RedisValue)records[i], now);
                }

                if (Dispatch(job))
                {
                    count++;
                }
            }
        }
        while (cursor != "0-0");
        return count;
    }

    /// <summary>Queues a job on its key's lane (starting the lane if idle); false when a lane already has it.</summary>
    private bool Dispatch(StreamJob job)
    {
        lock (_lock)
        {
            if (!_known.Add(job.EntryId))
            {
                return false;
            }
        }

        _lanes.Add(job.Key ?? string.Empty, job); // only the reader dispatches, so a key's jobs go in in stream order
        return true;
    }

    /// <summary>Runs one job of a lane until it is finished (true), retrying it in place, or until this tenure ends.</summary>
    private async Task<bool> RunToEndAsync(StreamJob job, CancellationToken draining)
    {
        try
        {
            while (!draining.IsCancellationRequested)
            {
                if (job.Delay > TimeSpan.Zero)
                {
                    await Task.Delay(job.Delay, _runtime.Time, draining).ConfigureAwait(false);
                    job.Delay = TimeSpan.Zero;
                }

                if (!_lease.IsValid)
                {
                    return false; // lost, which drains this worker: the next owner runs the job
                }

                Interlocked.Increment(ref _running);
                AttemptEnd end;
                try
                {
                    end = await AttemptExecutor.RunAsync(_runtime, job, _settler, _lease, _handlers.Token).ConfigureAwait(false);
                }
                finally
                {
                    Interlocked.Decrement(ref _running);
                }

                if (end == AttemptEnd.Finished)
                {
                    lock (_lock)
                    {
                        _known.Remove(job.EntryId);
                    }

                    _space.Set();
                    return true;
                }

                if (end == AttemptEnd.Stopped)
                {
                    Drain();
                    return false;
                }

                // RetryLater: the attempt count and due time are stored with the entry; wait here, holding the key.
            }
        }
        catch (OperationCanceledException) when (draining.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            RedisLog.DispatcherLoopFailed(_runtime.Logger, ex);
            Drain();
        }

        return false;
    }

    private async Task ReleaseAsync()
    {
        try
        {
            if ((long)await _runtime.Database.ScriptEvaluateAsync(DispatcherScripts.ReleaseLease, [_leaseKey], [_lease.Value]).ConfigureAwait(false) == 1)
            {
                RedisLog.PartitionReleased(_runtime.Logger, _runtime.InstanceId, Partition);
                _released();
            }
        }
        catch (Exception ex) when (DispatcherRuntime.IsGone(ex) || ex is RedisException)
        {
            // The lease expires on its own.
        }
    }
}
