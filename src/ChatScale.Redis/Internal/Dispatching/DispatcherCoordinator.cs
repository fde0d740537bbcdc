using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Membership and assignment: every third of the lease TTL (and at once on a rebalance wake-up) heartbeats this
/// instance's membership (after the first heartbeat it waits a short settle time before taking anything), computes
/// the owner of each partition by <see cref="RendezvousAssignment"/>, takes the free leases of its own partitions,
/// <b>renews the lease of every partition whose worker is still running</b> (also while the dispatcher stops, until
/// the last handler has returned), drains the workers of partitions it no longer owns and recovers the shared
/// stream's entries of departed instances.
/// </summary>
internal sealed class DispatcherCoordinator : IDisposable
{
    private readonly DispatcherRuntime _runtime;
    private readonly DispatcherWakeUps _wakeUps;
    private readonly SharedStreamWorker? _shared;
    private readonly PartitionWorker?[] _workers;
    private readonly CancellationTokenSource _ended = new();
    private readonly Signal _rebalance = new();
    private string[] _live = [];
    private bool _joined;

    public DispatcherCoordinator(DispatcherRuntime runtime, DispatcherWakeUps wakeUps, SharedStreamWorker? shared)
    {
        _runtime = runtime;
        _wakeUps = wakeUps;
        _shared = shared;
        _workers = new PartitionWorker?[runtime.Partitions];
        wakeUps.Rebalanced = _rebalance.Set;
    }

    public Task Completion { get; private set; } = Task.CompletedTask;

    public int OwnedPartitionCount
    {
        get
        {
            var count = 0;
            foreach (var worker in _workers)
            {
                if (worker is { Completion.IsCompleted: false } && !worker.Lease.Lost.IsCancellationRequested)
                {
                    count++;
                }
            }

            return count;
        }
    }

    public void Start()
    {
        using (ExecutionContext.SuppressFlow())
        {
            Completion = Task.Run(RunAsync, CancellationToken.None);
        }
    }

    /// <summary>Every partition worker that is still running (draining or not).</summary>
    public Task WhenWorkersEnded()
    {
        var tasks = new List<Task>();
        foreach (var worker in _workers)
        {
            if (worker is { Completion.IsCompleted: false })
            {
                tasks.Add(worker.Completion);
            }
        }

        return Task.WhenAll(tasks);
    }

    /// <summary>Stops the loop (after the workers ended: no lease left to renew) and leaves the membership.</summary>
    public async Task EndAsync(bool leave)
    {
        await _ended.CancelAsync().ConfigureAwait(false);
        await Completion.ConfigureAwait(false);
        if (!leave)
        {
            return;
        }

        try
        {
            await _runtime.Database.ScriptEvaluateAsync(DispatcherScripts.Heartbeat, [_runtime.Keys.DispatcherMembers], [_runtime.InstanceId, (long)_runtime.LeaseTtl.TotalMilliseconds, 1]).ConfigureAwait(false);
            _wakeUps.AnnounceRebalance();
        }
        catch (Exception ex) when (DispatcherRuntime.IsGone(ex) || ex is RedisException)
        {
            // Our membership expires on its own after the lease TTL.
        }
    }

    public void Rebalance() => _rebalance.Set();

    public void Dispose()
    {
        _ended.Dispose();
        _rebalance.Dispose();
    }

    private async Task RunAsync()
    {
        var ended = _ended.Token;
        var tick = _runtime.LeaseTtl / 3;
        while (!ended.IsCancellationRequested)
        {
            var joinedNow = false;
            try
            {
                joinedNow = await CoordinateAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (!ended.IsCancellationRequested)
            {
                RedisLog.CoordinationFailed(_runtime.Logger, ex, tick);
            }
            catch (Exception)
            {
                break;
            }

            try
            {
                if (joinedNow)
                {
                    // Not cut short by rebalance wake-ups (our own join announces one): instances started together
                    // all need to be in the membership before any of them takes a partition.
                    await Task.Delay(JoinSettle, _runtime.Time, ended).ConfigureAwait(false);
                }
                else
                {
                    await _rebalance.WaitAsync(tick, ended).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// How long a starting instance waits between joining the membership and taking its first partitions (a tenth of
    /// the lease TTL, 100 ms to 1 s), so instances started at about the same time see each other first and take each
    /// partition once, instead of one taking all and handing half of them over a moment later.
    /// </summary>
    private TimeSpan JoinSettle => TimeSpan.FromTicks(Math.Clamp(_runtime.LeaseTtl.Ticks / 10, TimeSpan.TicksPerMillisecond * 100, TimeSpan.TicksPerSecond));

    /// <summary>One round; true when it was the first successful heartbeat (then nothing was taken yet).</summary>
    private async Task<bool> CoordinateAsync()
    {
        var stopping = _runtime.Stopping.IsCancellationRequested;

        // Renewals first and on their own, so a slow heartbeat never delays them.
        var renewals = new List<Task>();
        foreach (var worker in _workers)
        {
            if (worker is { Completion.IsCompleted: false } && !worker.Lease.Lost.IsCancellationRequested)
            {
                renewals.Add(RenewAsync(worker.Lease));
            }
        }

        if (!stopping)
        {
            await _wakeUps.SubscribeAsync().ConfigureAwait(false);
            var members = (RedisValue[])(await _runtime.Database.ScriptEvaluateAsync(
                DispatcherScripts.Heartbeat, [_runtime.Keys.DispatcherMembers], [_runtime.InstanceId, (long)_runtime.LeaseTtl.TotalMilliseconds, 0]).ConfigureAwait(false))!;
            var live = new string[members.Length];
            for (var i = 0; i < members.Length; i++)
            {
                live[i] = (string)members[i]!;
            }

            Array.Sort(live, StringComparer.Ordinal);
            if (!_live.AsSpan().SequenceEqual(live))
            {
                _wakeUps.AnnounceRebalance(); // someone joined or left: everyone looks now
            }

            _live = live;
            if (!_joined)
            {
                _joined = true;
                await Task.WhenAll(renewals).ConfigureAwait(false);
                return true;
            }

            var owners = new string?[_workers.Length];
            var acquisitions = new List<Task>();
            for (var p = 0; p < _workers.Length; p++)
            {
                owners[p] = RendezvousAssignment.Owner(p, live);
                var mine = string.Equals(owners[p], _runtime.InstanceId, StringComparison.Ordinal);
                var worker = _workers[p];
                if (worker is { Completion.IsCompleted: false })
                {
                    if (!mine)
                    {
                        worker.Drain(); // handed over once its running handlers have returned
                    }
                }
                else if (mine)
                {
                    acquisitions.Add(AcquireAsync(p));
                }
            }

            _wakeUps.SetOwners(owners);
            await Task.WhenAll(acquisitions).ConfigureAwait(false);
            if (_shared is not null)
            {
                await _shared.ReclaimDeadConsumersAsync(live, _runtime.Stopping.Token).ConfigureAwait(false);
            }
        }

        await Task.WhenAll(renewals).ConfigureAwait(false);
        return false;
    }

    private async Task RenewAsync(PartitionLease lease)
    {
        var sentAt = _runtime.Time.GetTimestamp();
        try
        {
            var renewed = (long)await _runtime.Database.ScriptEvaluateAsync(
                DispatcherScripts.RenewLease, [_runtime.Keys.Partition(lease.Partition, "lease")], [lease.Value, (long)_runtime.LeaseTtl.TotalMilliseconds]).ConfigureAwait(false);
            if (renewed == 1)
            {
                lease.Extend(sentAt);
            }
            else
            {
                RedisLog.FencedRefused(_runtime.Logger, _runtime.InstanceId, "renewal", lease.Partition);
                lease.Lose();
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The lease stays valid locally until its validity runs out; then its handlers are cancelled.
        }
    }

    private async Task AcquireAsync(int partition)
    {
        var sentAt = _runtime.Time.GetTimestamp();
        long token;
        try
        {
            token = (long)await _runtime.Database.ScriptEvaluateAsync(
                DispatcherScripts.AcquireLease,
                [_runtime.Keys.Partition(partition, "lease"), _runtime.Keys.Partition(partition, "fence"), _runtime.Keys.Partition(partition, "jobs")],
                [_runtime.InstanceId, (long)_runtime.LeaseTtl.TotalMilliseconds, DispatcherScripts.Group]).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return;
        }

        if (token <= 0)
        {
            return;
        }

        var lease = new PartitionLease(partition, _runtime.InstanceId, token, _runtime.LeaseTtl, sentAt, _runtime.Time);
        if (_runtime.Stopping.IsCancellationRequested)
        {
            lease.Lose(); // the lease expires on its own; nobody works it here
            return;
        }

        var worker = new PartitionWorker(_runtime, lease, _wakeUps.Partition(partition), _wakeUps.Hints(partition), _wakeUps.AnnounceRebalance);
        _workers[partition] = worker;
        worker.Start();
    }
}
