using ChatScale.Dispatching;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Works one partition for one lease tenure. Its <see cref="PartitionReader"/> takes entries with fenced scripts (and
/// carries the acks of finished jobs in the same scripts) and hands them to <b>per-key lanes</b> (the
/// <see cref="KeyLanes{TJob}"/> the in-memory dispatcher uses too): jobs of one ordering key run one at a time in
/// stream order, waiting for the previous one's ack; different keys of the partition run in parallel (bounded by the
/// instance's worker slots), so a retrying or flooded key holds back only itself.
/// </summary>
/// <remarks>
/// The worker ends after <see cref="Drain"/> (rebalance or stop) or when its lease is lost, once every running
/// handler has returned; the coordinator renews the lease until then, and the worker releases it last.
/// </remarks>
internal sealed class PartitionWorker : IDisposable
{
    private readonly DispatcherRuntime _runtime;
    private readonly PartitionLease _lease;
    private readonly JobSettler _settler;
    private readonly PartitionReader _reader;
    private readonly RedisKey _leaseKey;
    private readonly CancellationTokenSource _draining;
    private readonly CancellationTokenSource _handlers;
    private readonly Action _released;
    private readonly KeyLanes<StreamJob> _lanes;
    private int _running;
    private volatile bool _finished;

    public PartitionWorker(DispatcherRuntime runtime, PartitionLease lease, Signal wake, WakeUpHints hints, Action released)
    {
        _released = released;
        _runtime = runtime;
        _lease = lease;
        _leaseKey = runtime.Keys.Partition(lease.Partition, "lease");
        _settler = new JobSettler(
            runtime, runtime.Keys.Partition(lease.Partition, "jobs"), runtime.Keys.Partition(lease.Partition, "attempts"), runtime.Keys.Partition(lease.Partition, "dead"), lease, carrier: wake);
        _draining = CancellationTokenSource.CreateLinkedTokenSource(runtime.Stopping.Token, lease.Lost);
        _handlers = CancellationTokenSource.CreateLinkedTokenSource(runtime.Aborting.Token, lease.Lost);
        lease.Lost.Register(static state => ((PartitionWorker)state!).OnLeaseLost(), this);
        _lanes = new KeyLanes<StreamJob>(RunToEndAsync, _draining.Token);
        _reader = new PartitionReader(runtime, lease, wake, hints, _settler, _lanes);
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
            await _reader.RunAsync(draining).ConfigureAwait(false);
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
            _settler.StopCarrying(); // the reader has ended: the settler sends the acks of the handlers still running
            await _lanes.WhenIdle().ConfigureAwait(false); // no lane can start any more
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
                    _reader.Forget(job);
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
