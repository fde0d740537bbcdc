using System.Collections.Concurrent;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// The partition reader carries acks with its reads (one script for both) and lets a busy key's next ack carry the
/// read of that key's new jobs, on a real redis-server: fewer scripts per job, and no key waits for another's.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class PartitionReaderTests(RedisFixture redis, ITestOutputHelper output)
{
    [Fact]
    public async Task JobsEnqueuedWhileTheirKeyIsBusy_AreReadWithItsAcks_NotWithAReadEach()
    {
        const int Queued = 20;
        var prefix = RedisFixture.UniquePrefix("reader-busy");
        var ran = new ConcurrentQueue<int>();
        var firstRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var letFirstReturn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var behavior = new JobBehavior<Numbered>(async (job, _, _) =>
        {
            if (job.Seq == 0)
            {
                firstRunning.TrySetResult();
                await letFirstReturn.Task;
            }

            ran.Enqueue(job.Seq);
        });

        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d => d.Partitions = 1, r => r.LeaseTtl = TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(() => host.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        await host.EnqueueAsync(new Numbered("conv", 0), "conv");
        await firstRunning.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var before = await ScriptCallsAsync();
        var enqueueStarted = AttemptLog.Now;
        for (var seq = 1; seq <= Queued; seq++)
        {
            await host.EnqueueAsync(new Numbered("conv", seq), "conv"); // each wakes the reader: its key is busy
        }

        var enqueueMs = AttemptLog.Ms(AttemptLog.Now - enqueueStarted);
        var whileBusy = await ScriptCallsAsync() - before;
        letFirstReturn.SetResult();
        await Eventually.TrueAsync(() => ran.Count == Queued + 1, "every job to run");
        await Eventually.TrueAsync(async () => await PendingAsync(prefix) == 0, "every job acked");
        var scripts = await ScriptCallsAsync() - before;
        output.WriteLine($"{whileBusy} script calls while {Queued} jobs were enqueued behind the busy one ({enqueueMs:F0} ms); {scripts} in all");

        Assert.Equal(Enumerable.Range(0, Queued + 1), ran);
        // Reading at every wake-up took 13 reads here (the build before the reader carried acks: 34 scripts in all);
        // owed to the busy job's ack, none, unless enqueuing outlasted the poll interval (250 ms in this host).
        Assert.InRange(whileBusy, 0, 1 + (int)(enqueueMs / 250));
        // Then about one script per ack, each also reading (21), plus the odd lease renewal or membership heartbeat.
        Assert.InRange(scripts, Queued + 1, Queued + 1 + 4 + (int)(enqueueMs / 250));
    }

    [Fact]
    public async Task AJobOfAnotherKey_IsReadAtOnce_WhileTheBusyKeysReadWaitsForItsAck()
    {
        var prefix = RedisFixture.UniquePrefix("reader-other");
        var ran = new ConcurrentQueue<string>();
        var letBusyReturn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var busyRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var behavior = new JobBehavior<Numbered>(async (job, _, _) =>
        {
            if (job is { Conversation: "busy", Seq: 0 })
            {
                busyRunning.TrySetResult();
                await letBusyReturn.Task;
            }

            ran.Enqueue($"{job.Conversation}:{job.Seq}");
        });

        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d => d.Partitions = 1);
        await Eventually.TrueAsync(() => host.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        await host.EnqueueAsync(new Numbered("busy", 0), "busy");
        await busyRunning.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await host.EnqueueAsync(new Numbered("busy", 1), "busy"); // its read is owed to busy:0's ack
        await host.EnqueueAsync(new Numbered("other", 0), "other"); // a key with nothing running: read at once

        await Eventually.TrueAsync(() => ran.Contains("other:0"), "the other key's job to run while busy:0 still runs");
        Assert.Equal(["other:0"], ran);
        letBusyReturn.SetResult();
        await Eventually.TrueAsync(() => ran.Count == 3, "the busy key's jobs to run");
        Assert.Equal(["other:0", "busy:0", "busy:1"], ran);
        await Eventually.TrueAsync(async () => await PendingAsync(prefix) == 0, "every job acked");
    }

    [Fact]
    public async Task AnAckHeldForTheNextRead_IsSentWhenTheInstanceStops_SoTheNextOwnerDoesNotRunTheJobAgain()
    {
        var prefix = RedisFixture.UniquePrefix("reader-stop");
        var runs = 0;
        var ran = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var behavior = new JobBehavior<Numbered>((_, _, _) =>
        {
            Interlocked.Increment(ref runs);
            ran.TrySetResult();
            return ValueTask.CompletedTask;
        });

        await using (var first = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d => d.Partitions = 1))
        {
            await Eventually.TrueAsync(() => first.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
            await first.EnqueueAsync(new Numbered("conv", 0), "conv");
            await ran.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await first.Dispatcher.StopAsync(CancellationToken.None); // at once: its ack is still held for the next read
        }

        Assert.Equal(0, await PendingAsync(prefix));
        await using var second = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(behavior), d => d.Partitions = 1);
        await Eventually.TrueAsync(() => second.Dispatcher.OwnedPartitionCount == 1, "node-b to take the partition");
        await second.EnqueueAsync(new Numbered("conv", 1), "conv");
        await Eventually.TrueAsync(() => Volatile.Read(ref runs) == 2, "node-b to run the next job");
        Assert.Equal(2, Volatile.Read(ref runs)); // and not job 0 again
    }

    private async Task<long> ScriptCallsAsync()
    {
        await using var direct = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true");
        var stats = await direct.GetServer(direct.GetEndPoints()[0]).InfoAsync("commandstats");
        return stats.SelectMany(g => g)
            .Where(p => p.Key is "cmdstat_evalsha" or "cmdstat_eval")
            .Sum(p => long.Parse(p.Value.Split(',')[0]["calls=".Length..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private async Task<long> PendingAsync(string prefix)
    {
        await using var direct = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var stream = new RedisKeyspace(prefix, sharded: false).Partition(0, "jobs");
        var db = direct.GetDatabase();
        return await db.StreamLengthAsync(stream) + (await db.StreamPendingAsync(stream, DispatcherScripts.Group)).PendingMessageCount;
    }
}
