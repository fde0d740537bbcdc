using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// Settling and start-up on real Redis: an ack whose reply is lost after Redis ran it, and instances started together.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherSettleTests(RedisFixture redis, ITestOutputHelper output)
{
    [Fact]
    public async Task AckTimingOutAfterItRanInRedis_IsRetried_TheJobRunsOnce_NothingStaysPending_AndTheLaneGoesOn()
    {
        var prefix = RedisFixture.UniquePrefix("settle-timeout");
        var log = new AttemptLog();
        var (behavior, firstReturning, letFirstReturn) = FirstAttemptOfSeq0Held(log);

        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var host = await DispatcherHost.StartAsync(
            proxy.ConnectionString,
            prefix,
            "node-a",
            b => b.AddBehavior(behavior),
            d => d.Partitions = 1,
            r => r.LeaseTtl = TimeSpan.FromSeconds(6), // valid for 4.8 s without a renewal: longer than the stall below
            connection: c =>
            {
                // Long enough that the test's own enqueues (through the proxy, before any stall) never time out on a
                // loaded machine (one took 804 ms); the stall below lasts until the retry is seen, however long.
                c.AsyncTimeout = 1000;
                c.HeartbeatInterval = TimeSpan.FromMilliseconds(100); // timeouts are noticed on the heartbeat
            });
        await Eventually.TrueAsync(() => host.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        await host.EnqueueAsync(new Numbered("conv", 0), "conv");
        await host.EnqueueAsync(new Numbered("conv", 1), "conv");
        await firstReturning.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await using var direct = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = direct.GetDatabase();
        var stream = new RedisKeyspace(prefix, sharded: false).Partition(0, "jobs");
        Assert.Equal(2, await db.StreamLengthAsync(stream));

        proxy.StallReplies(); // requests still reach Redis and run there; their replies are held
        var stalledAt = AttemptLog.Now;
        letFirstReturn.SetResult();
        await Eventually.TrueAsync(async () => await db.StreamLengthAsync(stream) == 1, "the ack of seq 0 to run in Redis", TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => host.LogCount(2515) >= 1, "the ack to time out and be retried", TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(log.Attempts, a => a.Seq == 1); // the key's next job waits for the ack's answer
        proxy.Release();
        output.WriteLine($"replies held for {AttemptLog.Ms(AttemptLog.Now - stalledAt):F0} ms; settle retries logged: {host.LogCount(2515)}");

        await Eventually.TrueAsync(() => log.Attempts.Any(a => a.Seq == 1), "seq 1 to run after the stall");
        await host.EnqueueAsync(new Numbered("conv", 2), "conv");
        await Eventually.TrueAsync(() => log.Attempts.Any(a => a.Seq == 2), "the lane to take a job enqueued afterwards");

        log.AssertNoOverlapAndInOrder();
        Assert.Equal([0, 1, 2], log.Attempts.Select(a => a.Seq).Order()); // each ran exactly once
        Assert.All(log.Attempts, a => Assert.Equal(1, a.Number));
        Assert.Equal(1, host.Dispatcher.OwnedPartitionCount); // the lease survived: the timeout was not taken for a refusal
        await Eventually.TrueAsync(async () => await db.StreamLengthAsync(stream) == 0, "every entry acked and deleted");
        Assert.Equal(0, (await db.StreamPendingAsync(stream, DispatcherScripts.Group)).PendingMessageCount);
    }

    [Fact]
    public async Task EnqueueWhoseReplyTimesOutAfterRedisStoredTheJob_ThrowsSayingItMayHaveSucceeded_AndTheJobRunsOnce()
    {
        var prefix = RedisFixture.UniquePrefix("enqueue-timeout");
        var log = new AttemptLog();
        JobBehavior<Numbered> Behavior(string host) => new((job, context, _) =>
        {
            log.Add(host, job, context, AttemptLog.Now, AttemptLog.Now, completed: true);
            return ValueTask.CompletedTask;
        });

        // The API's node enqueues through a proxy; a second instance reaches Redis directly and runs the jobs.
        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var api = await DispatcherHost.StartAsync(proxy.ConnectionString, prefix, "node-api", b => b.AddBehavior(Behavior("node-api")), d => d.Partitions = 1, connection: c => c.AsyncTimeout = 1000);
        await using var worker = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-worker", b => b.AddBehavior(Behavior("node-worker")), d => d.Partitions = 1);
        await api.EnqueueAsync(new Numbered("conv", 0), "conv");
        await Eventually.TrueAsync(() => log.Attempts.Any(a => a.Seq == 0), "the first job to run");

        // The XADD reaches Redis and stores the job; its reply is held past the command timeout.
        var held = proxy.HoldRepliesAfter("XADD"u8.ToArray());
        var enqueue = api.EnqueueAsync(new Numbered("conv", 1), "conv").AsTask();
        await held;
        var failure = await Assert.ThrowsAsync<BackplaneUnavailableException>(() => enqueue);
        output.WriteLine(failure.Message);
        Assert.True(failure.MayHaveSucceeded, "a timeout after the XADD was sent says the job may have been stored");
        proxy.Release();

        await Eventually.TrueAsync(() => log.Attempts.Any(a => a.Seq == 1), "the job Redis stored to run although its enqueue threw");
        await api.EnqueueAsync(new Numbered("conv", 2), "conv");
        await Eventually.TrueAsync(() => log.Attempts.Any(a => a.Seq == 2), "a later job to run");
        Assert.Equal([0, 1, 2], log.Attempts.Select(a => a.Seq).Order()); // each exactly once

        // Redis unreachable (every connection refused): nothing was sent, and the exception says so.
        await proxy.CutAsync();
        await Eventually.TrueAsync(() => !api.Multiplexer.IsConnected, "the API node to see that Redis is gone");
        var refused = await Assert.ThrowsAsync<BackplaneUnavailableException>(() => api.EnqueueAsync(new Numbered("conv", 3), "conv").AsTask());
        output.WriteLine(refused.Message);
        output.WriteLine(refused.InnerException?.ToString());
        Assert.False(refused.MayHaveSucceeded, "an enqueue that never left the process says nothing was stored");
        proxy.Release();
    }

    [Fact]
    public async Task AckRanInRedis_ButItsRepliesWereHeldPastTheLease_TheNextTenureDoesNotRunTheJobAgain()
    {
        var prefix = RedisFixture.UniquePrefix("settle-late");
        var log = new AttemptLog();
        var (behavior, firstReturning, letFirstReturn) = FirstAttemptOfSeq0Held(log);

        await using var proxy = new StallingProxy(redis.ConnectionString);
        await using var host = await DispatcherHost.StartAsync(
            proxy.ConnectionString,
            prefix,
            "node-a",
            b => b.AddBehavior(behavior),
            d => d.Partitions = 1,
            r => r.LeaseTtl = TimeSpan.FromMilliseconds(1500), // valid for 1.2 s locally without a renewal reply
            connection: c =>
            {
                c.AsyncTimeout = 300;
                c.HeartbeatInterval = TimeSpan.FromMilliseconds(100);
            });
        await Eventually.TrueAsync(() => host.Dispatcher.OwnedPartitionCount == 1, "node-a to own the partition");
        await host.EnqueueAsync(new Numbered("conv", 0), "conv");
        await host.EnqueueAsync(new Numbered("conv", 1), "conv");
        await firstReturning.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await using var direct = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var db = direct.GetDatabase();
        var stream = new RedisKeyspace(prefix, sharded: false).Partition(0, "jobs");
        proxy.StallReplies();
        letFirstReturn.SetResult();
        await Eventually.TrueAsync(async () => await db.StreamLengthAsync(stream) == 1, "the ack of seq 0 to run in Redis", TimeSpan.FromSeconds(10));

        // No renewal reply arrives either: the tenure gives up (its settle too) once its local validity has run out.
        await Eventually.TrueAsync(() => host.Dispatcher.OwnedPartitionCount == 0, "node-a to give up its tenure", TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(log.Attempts, a => a.Seq == 1);
        proxy.Release();

        // A new tenure (a larger fencing token) recovers what is still pending: seq 1, not the acked seq 0.
        await Eventually.TrueAsync(() => log.Attempts.Any(a => a.Seq == 1), "seq 1 to run in the next tenure", TimeSpan.FromSeconds(30));
        log.AssertNoOverlapAndInOrder();
        Assert.Equal([0, 1], log.Attempts.Select(a => a.Seq).Order());
        Assert.True(log.Attempts.Single(a => a.Seq == 1).Token > log.Attempts.Single(a => a.Seq == 0).Token, "seq 1 ran under a later tenure");
        await Eventually.TrueAsync(async () => await db.StreamLengthAsync(stream) == 0, "every entry acked and deleted");
        Assert.Equal(0, (await db.StreamPendingAsync(stream, DispatcherScripts.Group)).PendingMessageCount);
    }

    [Fact]
    public async Task TwoInstancesStartedTogether_TakeEachPartitionOnce()
    {
        const int Partitions = 64;
        var prefix = RedisFixture.UniquePrefix("settle-startup");
        var behavior = new JobBehavior<Numbered>((_, _, _) => default);
        void Options(DispatcherOptions d) => d.Partitions = Partitions;

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), Options, start: false);
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(behavior), Options, start: false);
        await Task.WhenAll(a.Dispatcher.StartAsync(CancellationToken.None), b.Dispatcher.StartAsync(CancellationToken.None));

        string[] members = [a.Dispatcher.InstanceId, b.Dispatcher.InstanceId];
        var expectedA = Enumerable.Range(0, Partitions).Count(p => Internal.Dispatching.RendezvousAssignment.Owner(p, members) == a.Dispatcher.InstanceId);
        await Eventually.TrueAsync(
            () => a.Dispatcher.OwnedPartitionCount == expectedA && b.Dispatcher.OwnedPartitionCount == Partitions - expectedA
                && a.LogCount(2503) + b.LogCount(2503) >= Partitions, // a worker logs its take once it has recovered
            "the rendezvous split");

        var (takesA, takesB) = (a.LogCount(2503), b.LogCount(2503));
        output.WriteLine($"partition takes: node-a {takesA} (owns {expectedA}), node-b {takesB} (owns {Partitions - expectedA}); releases {a.LogCount(2504) + b.LogCount(2504)}");
        Assert.Equal(expectedA, takesA);
        Assert.Equal(Partitions - expectedA, takesB);
        Assert.Equal(0, a.LogCount(2504) + b.LogCount(2504)); // no handovers
    }

    // Records every attempt on node-a; the first attempt of seq 0 signals firstReturning, then returns only once
    // letFirstReturn is set, so a test can stall Redis between the handler's return and its ack.
    private static (JobBehavior<Numbered> Behavior, TaskCompletionSource FirstReturning, TaskCompletionSource LetFirstReturn) FirstAttemptOfSeq0Held(AttemptLog log)
    {
        var firstReturning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var letFirstReturn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var behavior = new JobBehavior<Numbered>(async (job, context, _) =>
        {
            var start = AttemptLog.Now;
            if (job.Seq == 0 && context.Attempt == 1)
            {
                firstReturning.TrySetResult();
                await letFirstReturn.Task;
            }

            log.Add("node-a", job, context, start, AttemptLog.Now, completed: true);
        });
        return (behavior, firstReturning, letFirstReturn);
    }
}
