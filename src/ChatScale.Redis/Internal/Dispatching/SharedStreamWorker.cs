using System.Collections.Concurrent;
using System.Threading.Channels;
using ChatScale.Dispatching;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Works the shared stream of unkeyed jobs on this instance: one reader takes batches (as many entries as there are
/// free worker slots) through the consumer group under this instance's consumer name, and each job runs on its own;
/// a failing job waits for its retry off any slot (its attempt count and next-attempt time are stored with the entry,
/// so a node that claims it after this one died continues the count). Also recovers, at any time, the entries pending
/// under consumers of instances that left the membership, and forgets such consumers once they hold nothing.
/// </summary>
internal sealed class SharedStreamWorker : IDisposable
{
    private const int ClaimPage = 100;
    private readonly DispatcherRuntime _runtime;
    private readonly Signal _wake;
    private readonly JobSettler _settler;
    private readonly Channel<StreamJob> _due = Channel.CreateUnbounded<StreamJob>();
    private readonly ConcurrentDictionary<RedisValue, byte> _known = new();
    private readonly RetryTimers<StreamJob> _timers;
    private readonly Signal _space = new();
    private int _running;

    public SharedStreamWorker(DispatcherRuntime runtime, Signal wake)
    {
        _runtime = runtime;
        _wake = wake;
        _settler = new JobSettler(runtime, runtime.Keys.SharedJobs, runtime.Keys.SharedAttempts, runtime.Keys.SharedDeadLetters, lease: null);
        _timers = new RetryTimers<StreamJob>(runtime.Time, OnDue);
    }

    public Task Completion { get; private set; } = Task.CompletedTask;

    public void Start()
    {
        using (ExecutionContext.SuppressFlow())
        {
            Completion = Task.Run(RunAsync, CancellationToken.None);
        }
    }

    /// <summary>Claims the pending entries of consumers whose instance is not in <paramref name="live"/> (sorted, ordinal).</summary>
    public async Task ReclaimDeadConsumersAsync(string[] live, CancellationToken stopping)
    {
        var db = _runtime.Database;
        var stream = _runtime.Keys.SharedJobs;
        StreamConsumerInfo[] consumers;
        try
        {
            consumers = await db.StreamConsumerInfoAsync(stream, DispatcherScripts.Group).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal) || ex.Message.StartsWith("ERR no such key", StringComparison.Ordinal))
        {
            return;
        }

        var minIdle = (long)Math.Min(1000, _runtime.LeaseTtl.TotalMilliseconds / 3);
        foreach (var consumer in consumers)
        {
            var name = (string)consumer.Name!;
            if (stopping.IsCancellationRequested || Array.BinarySearch(live, name, StringComparer.Ordinal) >= 0)
            {
                continue;
            }

            if (consumer.PendingMessageCount == 0)
            {
                await db.ScriptEvaluateAsync(DispatcherScripts.ForgetConsumerIfEmpty, [stream], [DispatcherScripts.Group, name]).ConfigureAwait(false);
                continue;
            }

            var entries = await db.StreamPendingMessagesAsync(stream, DispatcherScripts.Group, ClaimPage, name).ConfigureAwait(false);
            var ids = new RedisValue[entries.Length];
            for (var i = 0; i < ids.Length; i++)
            {
                ids[i] = entries[i].MessageId;
            }

            // The idle floor makes two live nodes racing for one dead consumer's entries claim each entry once.
            var claimed = await db.StreamClaimAsync(stream, DispatcherScripts.Group, _runtime.InstanceId, minIdle, ids).ConfigureAwait(false);
            if (claimed.Length == 0)
            {
                continue;
            }

            var claimedIds = new RedisValue[claimed.Length];
            for (var i = 0; i < claimed.Length; i++)
            {
                claimedIds[i] = claimed[i].Id;
            }

            var records = await db.HashGetAsync(_runtime.Keys.SharedAttempts, claimedIds).ConfigureAwait(false);
            var now = _runtime.Time.GetUtcNow().ToUnixTimeMilliseconds();
            var count = 0;
            for (var i = 0; i < claimed.Length; i++)
            {
                var entry = claimed[i];
                if (entry.IsNull || !_known.TryAdd(entry.Id, 0))
                {
                    continue;
                }

                var job = StreamJob.Decode(entry.Id, (byte[]?)entry[StreamJob.Field], _runtime.Registry);
                job.ApplyRecord(records[i], now);
                Schedule(job);
                count++;
            }

            if (count > 0)
            {
                RedisLog.ConsumerReclaimed(_runtime.Logger, _runtime.InstanceId, count, name);
            }
        }
    }

    public void Dispose() => _space.Dispose();

    public ValueTask DisposeTimersAsync() => _timers.DisposeAsync();

    private async Task RunAsync()
    {
        var stopping = _runtime.Stopping.Token;
        var recoverMine = true;
        var running = new List<Task>();
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                running.RemoveAll(static t => t.IsCompleted);
                while (Volatile.Read(ref _running) < _runtime.WorkerCount && _due.Reader.TryRead(out var due))
                {
                    running.Add(RunJobAsync(due));
                }

                var room = _runtime.WorkerCount - Volatile.Read(ref _running);
                if (room <= 0)
                {
                    await _space.WaitAsync(_runtime.PollInterval, stopping).ConfigureAwait(false);
                    continue;
                }

                if (recoverMine)
                {
                    await RecoverOwnPendingAsync().ConfigureAwait(false);
                    recoverMine = false;
                    continue;
                }

                var reply = await _runtime.Database.ScriptEvaluateAsync(
                    DispatcherScripts.Read, [_runtime.Keys.SharedJobs], [RedisValue.EmptyString, DispatcherScripts.Group, _runtime.InstanceId, Math.Min(room, _runtime.ReadBatchSize)]).ConfigureAwait(false);
                if (reply.Length == 0)
                {
                    await _wake.WaitAsync(_runtime.PollInterval, stopping).ConfigureAwait(false);
                    continue;
                }

                for (var i = 0; i < reply.Length; i++)
                {
                    if (StreamJob.FromScript(reply[i], _runtime.Registry) is { } job && _known.TryAdd(job.EntryId, 0))
                    {
                        running.Add(RunJobAsync(job));
                    }
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                recoverMine = true;
                RedisLog.WorkerRedisFailed(_runtime.Logger, ex, _runtime.PollInterval);
                try
                {
                    await Task.Delay(_runtime.PollInterval, _runtime.Time, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task RecoverOwnPendingAsync()
    {
        // A read whose reply was lost left entries pending under our name that nothing here knows: run them.
        var db = _runtime.Database;
        try
        {
            // From the very start of the stream: jobs added before the group existed must run too.
            await db.StreamCreateConsumerGroupAsync(_runtime.Keys.SharedJobs, DispatcherScripts.Group, "0-0", createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("BUSYGROUP", StringComparison.Ordinal))
        {
        }

        RedisValue after = "0-0";
        while (true)
        {
            var entries = await db.StreamReadGroupAsync(_runtime.Keys.SharedJobs, DispatcherScripts.Group, _runtime.InstanceId, after, ClaimPage).ConfigureAwait(false);
            if (entries.Length == 0)
            {
                return;
            }

            var ids = new RedisValue[entries.Length];
            for (var i = 0; i < entries.Length; i++)
            {
                ids[i] = entries[i].Id;
            }

            var records = await db.HashGetAsync(_runtime.Keys.SharedAttempts, ids).ConfigureAwait(false);
            var now = _runtime.Time.GetUtcNow().ToUnixTimeMilliseconds();
            for (var i = 0; i < entries.Length; i++)
            {
                var entry = entries[i];
                if (!entry.IsNull && _known.TryAdd(entry.Id, 0))
                {
                    var job = StreamJob.Decode(entry.Id, (byte[]?)entry[StreamJob.Field], _runtime.Registry);
                    job.ApplyRecord(records[i], now);
                    Schedule(job);
                }
            }

            after = entries[^1].Id;
        }
    }

    private async Task RunJobAsync(StreamJob job)
    {
        Interlocked.Increment(ref _running);
        AttemptEnd end;
        try
        {
            await Task.Yield();
            end = await AttemptExecutor.RunAsync(_runtime, job, _settler, lease: null, _runtime.Aborting.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            RedisLog.DispatcherLoopFailed(_runtime.Logger, ex);
            end = AttemptEnd.Stopped;
        }
        finally
        {
            Interlocked.Decrement(ref _running);
            _space.Set();
        }

        if (end == AttemptEnd.RetryLater && !_runtime.Stopping.IsCancellationRequested)
        {
            Schedule(job);
            return;
        }

        // Finished, or stays pending under our consumer (a live node claims it once this instance has left).
        _known.TryRemove(job.EntryId, out _);
    }

    private void Schedule(StreamJob job)
    {
        if (!_timers.Schedule(job, job.Delay))
        {
            _known.TryRemove(job.EntryId, out _); // stopped: it stays pending under our consumer for the next instance
        }
    }

    private void OnDue(StreamJob job)
    {
        job.Delay = TimeSpan.Zero;
        _due.Writer.TryWrite(job);
        _wake.Set();
    }
}
