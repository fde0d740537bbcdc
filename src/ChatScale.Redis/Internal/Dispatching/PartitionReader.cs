using ChatScale.Dispatching;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// The single reader of one partition tenure: it takes entries with fenced scripts (first everything pending under any
/// consumer, then new entries; again at any time another consumer turns out to hold entries, or a script's reply was
/// lost) and queues them on their key's lane, in stream order. It also <b>carries the acks</b> of finished jobs: one
/// script (<see cref="DispatcherScripts.CompleteAndRead"/>) acks them and reads what arrived meanwhile, so that under
/// load a job costs one script on top of its <c>XADD</c> rather than a read and an ack.
/// </summary>
/// <remarks>
/// <para>Two waits make the scripts meet, each bounded so that no other key waits for them:</para>
/// <list type="bullet">
/// <item>A wake-up names its job's key (<see cref="WakeUpHints"/>). When every job announced belongs to a key that
/// already has a job read and unfinished here, reading now would only queue it behind that job: the read is owed to
/// that key's next ack instead, for at most a <see cref="RedisDispatcherOptions.PollInterval"/> (as long as a lost wake-up
/// could delay a read anyway; it bounds the wait of a key whose hash equals a busy key's). A job of any other key is
/// read at once.</item>
/// <item>An ack that nothing of the partition waits for (no other job read and unfinished, no read owed) waits up to
/// <see cref="AckHold"/> for the next read to carry it. A key's next job is read together with (and only after) the
/// ack of its previous one, so the order per key holds; an ack held when the tenure ends is sent at once by the
/// settler, and one lost with a crash only means the job runs again, as any unacked job does.</item>
/// </list>
/// </remarks>
internal sealed class PartitionReader
{

    /// <summary>How long an ack nothing waits for may wait for the next read to carry it.</summary>
    public static readonly TimeSpan AckHold = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan FirstFailureDelay = TimeSpan.FromMilliseconds(100);

    private readonly DispatcherRuntime _runtime;
    private readonly PartitionLease _lease;
    private readonly Signal _wake;
    private readonly JobSettler _settler;
    private readonly KeyLanes<StreamJob> _lanes;
    private readonly WakeUpHints _hints;
    private readonly RedisKey[] _keys; // stream, attempts, lease: the settle-and-read and the claim scripts
    private readonly RedisKey[] _consumerKeys;
    private readonly Lock _lock = new();
    private readonly HashSet<RedisValue> _known = []; // entries read and not finished: in a lane, running or waiting
    private readonly Dictionary<uint, int> _busyKeys = []; // key hash -> how many of _known have that key
    private bool _roomWanted; // the reader waits for room: a finished job wakes it
    private bool _roomFreed; // ... and says so
    private bool _readDue = true; // the stream may hold entries: read at once after the acquisition
    private long _owedSince; // a read is owed to the next ack since then (0: none)

    public PartitionReader(DispatcherRuntime runtime, PartitionLease lease, Signal wake, WakeUpHints hints, JobSettler settler, KeyLanes<StreamJob> lanes)
    {
        _runtime = runtime;
        _lease = lease;
        _wake = wake;
        _settler = settler;
        _lanes = lanes;
        _hints = hints;
        var stream = runtime.Keys.Partition(lease.Partition, "jobs");
        var leaseKey = runtime.Keys.Partition(lease.Partition, "lease");
        _keys = [stream, runtime.Keys.Partition(lease.Partition, "attempts"), leaseKey];
        _consumerKeys = [stream, leaseKey];
    }

    private int Partition => _lease.Partition;

    /// <summary>Recovers what is pending, then reads and settles until <paramref name="draining"/> fires or the lease is refused.</summary>
    public async Task RunAsync(CancellationToken draining)
    {
        var reclaimed = await RecoverAsync(othersOnly: false, draining).ConfigureAwait(false);
        if (reclaimed < 0)
        {
            return;
        }

        RedisLog.PartitionAcquired(_runtime.Logger, reclaimed > 0 ? LogLevel.Information : LogLevel.Debug, _runtime.InstanceId, Partition, _lease.Token, reclaimed);
        await _runtime.Database.ScriptEvaluateAsync(DispatcherScripts.ForgetIdleConsumers, _consumerKeys, [_lease.Value, DispatcherScripts.Group, _runtime.InstanceId]).ConfigureAwait(false);
        await LoopAsync(draining).ConfigureAwait(false);
    }

    /// <summary>A job has finished (acked or dead-lettered): it leaves the buffer, which may wake a reader waiting for room.</summary>
    public void Forget(StreamJob job)
    {
        lock (_lock)
        {
            if (_known.Remove(job.EntryId) && _busyKeys.TryGetValue(job.KeyHash, out var jobs))
            {
                if (jobs > 1)
                {
                    _busyKeys[job.KeyHash] = jobs - 1;
                }
                else
                {
                    _busyKeys.Remove(job.KeyHash);
                }
            }
        }

        if (Volatile.Read(ref _roomWanted))
        {
            Volatile.Write(ref _roomFreed, true);
            _wake.Set();
        }
    }

    private async Task LoopAsync(CancellationToken draining)
    {
        var recoverMine = false;
        var nextCheck = _runtime.Time.GetTimestamp();
        var checkEvery = Ticks(_runtime.LeaseTtl / 3);
        long holdUntil = 0;
        var failureDelay = FirstFailureDelay;
        while (!draining.IsCancellationRequested)
        {
            List<PendingAck>? acks = null;
            try
            {
                // Finished jobs go first, before any recovery: a recovery that keeps failing must not hold back the
                // acks (the next job of each of their keys waits for them).
                acks = _settler.TakeAcks();
                if (acks is null && recoverMine)
                {
                    // A script whose reply was lost left entries pending under our name that no lane knows: take
                    // them before any newer entry, so the order per key holds.
                    if (await RecoverAsync(othersOnly: false, draining).ConfigureAwait(false) < 0)
                    {
                        return;
                    }

                    recoverMine = false;
                }
                else if (acks is null && _runtime.Time.GetTimestamp() >= nextCheck)
                {
                    nextCheck = _runtime.Time.GetTimestamp() + checkEvery;
                    if (await RecoverAsync(othersOnly: true, draining).ConfigureAwait(false) < 0)
                    {
                        return;
                    }
                }

                int known;
                lock (_lock)
                {
                    known = _known.Count;
                }

                var room = _runtime.MaxBufferedPerPartition - known;
                var now = _runtime.Time.GetTimestamp();
                int count;
                if (acks is not null)
                {
                    if (!_readDue && _owedSince == 0 && !recoverMine && known <= acks.Count)
                    {
                        // Nothing of this partition waits for these acks: let the next read carry them, for a while.
                        holdUntil = holdUntil == 0 ? now + Ticks(AckHold) : holdUntil;
                        if (now < holdUntil)
                        {
                            _settler.PutBack(acks);
                            acks = null;
                            await WaitAsync(holdUntil - now, draining).ConfigureAwait(false);
                            continue;
                        }
                    }

                    // The acks go now and take with them whatever arrived meanwhile (its wake-up may still be on its
                    // way). No read before a pending recovery: recovered entries come first, for the order per key.
                    count = room > 0 && !recoverMine ? Math.Min(room, _runtime.ReadBatchSize) : 0;
                }
                else
                {
                    if (_owedSince != 0 && now - _owedSince >= Ticks(_runtime.PollInterval))
                    {
                        _readDue = true; // the busy key's ack is late: read without it
                    }

                    count = _readDue && room > 0 ? Math.Min(room, _runtime.ReadBatchSize) : 0;
                    if (count == 0)
                    {
                        // Nothing to settle or to read now: wait for a job (a wake-up), a finished job, room, the
                        // owed read's limit, or the poll.
                        if (_readDue && !WantRoom())
                        {
                            continue; // a job finished meanwhile: there is room now
                        }

                        var wait = _owedSince != 0 && !_readDue ? _owedSince + Ticks(_runtime.PollInterval) - now : Ticks(_runtime.PollInterval);
                        await WaitAsync(wait, draining).ConfigureAwait(false);
                        continue;
                    }
                }

                holdUntil = 0;
                if (count > 0)
                {
                    _hints.Clear(); // this read takes every job announced so far
                    _owedSince = 0;
                }

                var reply = await SendAsync(acks, count).ConfigureAwait(false);
                if (reply.Resp2Type == ResultType.Integer)
                {
                    RedisLog.FencedRefused(_runtime.Logger, _runtime.InstanceId, acks is null ? "read" : "settle", Partition);
                    if (acks is not null)
                    {
                        JobSettler.Settled(acks, acked: false);
                        acks = null;
                    }

                    _lease.Lose();
                    return;
                }

                failureDelay = FirstFailureDelay;
                if (acks is not null)
                {
                    JobSettler.Settled(acks, acked: true);
                    acks = null;
                }

                if (count > 0)
                {
                    var entries = reply[1];
                    for (var i = 0; i < entries.Length; i++)
                    {
                        if (StreamJob.FromScript(entries[i], _runtime.Registry) is { } job)
                        {
                            Dispatch(job);
                        }
                    }

                    // A short read drained the stream: wait for the next wake-up (already set if a job came
                    // meanwhile) rather than paying an empty read for every job.
                    _readDue = entries.Length == count;
                }
            }
            catch (OperationCanceledException) when (draining.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // A timeout may come after the script ran: entries it took stay pending under our name, and its acks
                // are sent again (idempotent). Retried soon, then less often, while the lease holds.
                recoverMine = true;
                _readDue = true;
                if (acks is not null)
                {
                    RedisLog.SettleFailed(_runtime.Logger, ex, (string)acks[0].Id!, failureDelay);
                }
                else
                {
                    RedisLog.WorkerRedisFailed(_runtime.Logger, ex, failureDelay);
                }

                await Task.Delay(failureDelay, _runtime.Time, draining).ConfigureAwait(false);
                failureDelay = failureDelay * 2 > _runtime.PollInterval ? _runtime.PollInterval : failureDelay * 2;
            }
            finally
            {
                if (acks is not null)
                {
                    _settler.PutBack(acks); // the script failed or never went: the next round (or the settler, once this reader ends) sends them again
                }
            }
        }
    }

    private Task<RedisResult> SendAsync(List<PendingAck>? acks, int count)
    {
        var args = new RedisValue[5 + (acks?.Count ?? 0)];
        args[0] = _lease.Value;
        args[1] = DispatcherScripts.Group;
        args[2] = _runtime.InstanceId;
        args[3] = count;
        args[4] = acks is null ? 0 : JobSettler.WriteIds(acks, args, 5);
        return _runtime.Database.ScriptEvaluateAsync(DispatcherScripts.CompleteAndRead, _keys, args);
    }

    /// <summary>
    /// Waits for the partition's signal, then judges what woke it: a wake-up whose jobs all belong to busy keys (the
    /// read is owed to their next ack), any other wake-up, freed room or the timeout (a read is due), or a finished job
    /// (its ack goes next). A signal that none of these explains is stale (an ack already taken, a wake-up whose job
    /// the last read took: its hint was recorded before that read was sent) and changes nothing.
    /// </summary>
    private async ValueTask WaitAsync(long ticks, CancellationToken draining)
    {
        var signalled = await _wake.WaitAsync(TimeSpan.FromSeconds(Math.Max(0, ticks) / (double)_runtime.Time.TimestampFrequency), draining).ConfigureAwait(false);
        Volatile.Write(ref _roomWanted, false);
        WakeUpVerdict verdict;
        lock (_lock)
        {
            verdict = _hints.Take(_busyKeys);
        }

        if (verdict == WakeUpVerdict.AllBusy && signalled)
        {
            _owedSince = _owedSince == 0 ? _runtime.Time.GetTimestamp() : _owedSince;
        }
        else if (!signalled || verdict != WakeUpVerdict.None || Interlocked.Exchange(ref _roomFreed, false))
        {
            _readDue = true; // the poll, a hold's or an owed read's limit; a job of an idle key; room
        }
    }

    /// <summary>Asks finished jobs to wake the reader; false when there is room already (then it asks nothing).</summary>
    private bool WantRoom()
    {
        Volatile.Write(ref _roomWanted, true);
        lock (_lock)
        {
            if (_known.Count < _runtime.MaxBufferedPerPartition)
            {
                Volatile.Write(ref _roomWanted, false);
                return false;
            }
        }

        return true;
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _runtime.Time.TimestampFrequency);

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
                _keys,
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

            _busyKeys[job.KeyHash] = _busyKeys.GetValueOrDefault(job.KeyHash) + 1;
        }

        _lanes.Add(job.Key ?? string.Empty, job); // only the reader dispatches, so a key's jobs go in in stream order
        return true;
    }
}
