using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// Per key, no two attempts overlap in time across instances, whatever happens to the owner: a graceful stop while a
/// handler runs longer than the lease TTL, or an owner whose link to Redis stalls past its lease (its renewals
/// starved). Attempts are recorded with start and end timestamps on one clock.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherFencingTests(RedisFixture redis, ITestOutputHelper output)
{
    private static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(1);

    private static void OnePartition(DispatcherOptions d)
    {
        d.Partitions = 1;
        d.InitialBackoff = TimeSpan.FromMilliseconds(200);
    }

    private static void ShortLease(RedisDispatcherOptions r) => r.LeaseTtl = LeaseTtl;

    [Fact]
    public async Task GracefulStop_WhileAHandlerRunsLongerThanTheLease_TheNextOwnerRunsTheKeyOnlyAfterItReturned()
    {
        var prefix = RedisFixture.UniquePrefix("fence-stop");
        var log = new AttemptLog();
        var slowStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        JobBehavior<Numbered> Behavior(string host) => new(async (job, context, ct) =>
        {
            var start = AttemptLog.Now;
            if (host == "node-a" && job.Seq == 0)
            {
                slowStarted.TrySetResult();
                await Task.Delay(TimeSpan.FromSeconds(3), CancellationToken.None); // 3 lease TTLs, ignoring nothing: no cancel comes
            }

            log.Add(host, job, context, start, AttemptLog.Now, completed: true);
        });

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")), OnePartition, ShortLease);
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        for (var seq = 0; seq < 5; seq++)
        {
            await a.EnqueueAsync(new Numbered("conv", seq), "conv");
        }

        await slowStarted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")), OnePartition, ShortLease);
        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            await a.Dispatcher.StopAsync(deadline.Token);
        }

        await Eventually.TrueAsync(() => log.Attempts.Select(x => x.Seq).Distinct().Count() == 5, "every job to run", TimeSpan.FromSeconds(30));
        foreach (var attempt in log.Attempts.OrderBy(x => x.Start))
        {
            output.WriteLine($"{attempt.Host} seq {attempt.Seq} attempt {attempt.Number} token {attempt.Token}: {AttemptLog.Ms(attempt.End - attempt.Start):F0} ms");
        }

        log.AssertNoOverlapAndInOrder();
        var slow = Assert.Single(log.Attempts, x => x.Seq == 0);
        Assert.Equal("node-a", slow.Host); // finished under a renewed lease: never run twice
        Assert.All(log.Attempts.Where(x => x.Host == "node-b"), x => Assert.True(x.Token > slow.Token, "a later owner holds a larger fencing token"));
        await Eventually.TrueAsync(async () => await b.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0 }, "an empty backlog");
    }

    [Fact]
    public async Task OwnerLinkStalledPastItsLease_ItsHandlerIsCancelledBeforeTheNextOwnerStarts_AndItsLateCommandsAreRefused()
    {
        var prefix = RedisFixture.UniquePrefix("fence-stall");
        var log = new AttemptLog();
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        JobBehavior<Numbered> Behavior(string host) => new(async (job, context, ct) =>
        {
            var start = AttemptLog.Now;
            if (host == "node-a" && job.Seq == 0)
            {
                running.TrySetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, ct); // runs until its lease can no longer be renewed
                }
                finally
                {
                    log.Add(host, job, context, start, AttemptLog.Now, completed: false);
                }
            }

            log.Add(host, job, context, start, AttemptLog.Now, completed: true);
        });

        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var a = await DispatcherHost.StartAsync(proxy.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")), OnePartition, ShortLease);
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        for (var seq = 0; seq < 4; seq++)
        {
            await a.EnqueueAsync(new Numbered("conv", seq), "conv");
        }

        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));
        proxy.Stall(); // node-a's renewals, reads and acks now wait in the proxy
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")), OnePartition, ShortLease);
        await Eventually.TrueAsync(() => log.Attempts.Count(x => x.Completed) == 4, "node-b to run the conversation", TimeSpan.FromSeconds(30));
        proxy.Release(); // the late renewal, read and settle reach Redis now
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount == 0, "node-a to give the partition up");

        foreach (var attempt in log.Attempts.OrderBy(x => x.Start))
        {
            output.WriteLine($"{attempt.Host} seq {attempt.Seq} attempt {attempt.Number} token {attempt.Token} completed={attempt.Completed}: {AttemptLog.Ms(attempt.Start - log.Attempts.Min(x => x.Start)):F0} .. {AttemptLog.Ms(attempt.End - log.Attempts.Min(x => x.Start)):F0} ms");
        }

        log.AssertNoOverlapAndInOrder();
        Assert.All(log.Attempts.Where(x => x.Completed), x => Assert.Equal("node-b", x.Host));

        // Nothing is left pending under node-a's consumer: its late reads took nothing.
        var db = b.Multiplexer.GetDatabase();
        var stream = new RedisKeyspace(prefix, sharded: false).Partition(0, "jobs");
        await Eventually.TrueAsync(async () => await db.StreamLengthAsync(stream) == 0, "every entry acked");
        var pending = await db.StreamPendingAsync(stream, DispatcherScripts.Group);
        Assert.Equal(0, pending.PendingMessageCount);
        output.WriteLine($"node-a refused fenced commands: {a.LogCount(2516)}");
    }

    [Fact]
    public async Task AlwaysFailingJob_WhoseOwnerChangesMidway_IsDeadLetteredAfterExactlyMaxAttemptsInTotal()
    {
        var prefix = RedisFixture.UniquePrefix("fence-attempts");
        var log = new AttemptLog();
        var twoFailures = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        JobBehavior<Numbered> Behavior(string host) => new((job, context, _) =>
        {
            log.Add(host, job, context, AttemptLog.Now, AttemptLog.Now, completed: false);
            if (context.Attempt == 2)
            {
                twoFailures.TrySetResult();
            }

            throw new InvalidOperationException($"always fails (attempt {context.Attempt} on {host})");
        });
        void Options(DispatcherOptions d)
        {
            OnePartition(d);
            d.MaxAttempts = 5;
            d.InitialBackoff = TimeSpan.FromMilliseconds(400);
        }

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")), Options, ShortLease);
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        await a.EnqueueAsync(new Numbered("conv", 0), "conv");
        await twoFailures.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")), Options, ShortLease);
        await a.Dispatcher.StopAsync(CancellationToken.None); // hands over during the backoff

        await Eventually.TrueAsync(async () => (await b.Dispatcher.GetDeadLettersAsync()).Count == 1, "the job to be dead-lettered", TimeSpan.FromSeconds(30));
        var dead = Assert.Single(await b.Dispatcher.GetDeadLettersAsync());
        Assert.Equal(5, dead.Attempts);
        Assert.Equal("conv", dead.OrderingKey);
        Assert.Equal([1, 2, 3, 4, 5], log.Attempts.OrderBy(x => x.Start).Select(x => x.Number));
        Assert.Contains(log.Attempts, x => x.Host == "node-a");
        Assert.Contains(log.Attempts, x => x.Host == "node-b");
        Assert.Equal(5, log.Attempts.Count);
    }

    [Fact]
    public async Task EmptyOrderingKey_KeepsItsIdentity_OnDeadLetterAndReplay()
    {
        var prefix = RedisFixture.UniquePrefix("fence-emptykey");
        var keys = new List<string?>();
        var fail = true;
        var behavior = new JobBehavior<Numbered>((_, context, _) =>
        {
            lock (keys)
            {
                keys.Add(context.OrderingKey);
            }

            return Volatile.Read(ref fail) ? throw new InvalidOperationException("fails") : default;
        });
        void Options(DispatcherOptions d)
        {
            OnePartition(d);
            d.MaxAttempts = 1;
        }

        await using var host = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), Options, ShortLease);
        await host.EnqueueAsync(new Numbered(string.Empty, 0), string.Empty);
        await Eventually.TrueAsync(async () => (await host.Dispatcher.GetDeadLettersAsync()).Count == 1, "a dead letter");
        Assert.Equal(string.Empty, Assert.Single(await host.Dispatcher.GetDeadLettersAsync()).OrderingKey);
        Volatile.Write(ref fail, false);
        Assert.Equal(1, await host.Dispatcher.ReplayDeadLettersAsync());
        await Eventually.TrueAsync(() => { lock (keys) { return keys.Count == 2; } }, "the replayed run");
        lock (keys)
        {
            Assert.All(keys, k => Assert.Equal(string.Empty, k));
        }
    }
}
