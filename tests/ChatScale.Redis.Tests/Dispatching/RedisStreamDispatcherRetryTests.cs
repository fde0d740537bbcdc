using System.Collections.Concurrent;
using System.Diagnostics;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherRetryTests(RedisFixture redis, ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task FailingTwiceThenSucceeding_IsRetriedWithGrowingDelays_AndEndsAcked(bool keyed)
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-retry");
        var clock = Stopwatch.StartNew();
        var attempts = new ConcurrentQueue<(int Attempt, TimeSpan At)>();
        var succeeded = 0;
        var behavior = new JobBehavior<Numbered>((_, context, _) =>
        {
            attempts.Enqueue((context.Attempt, clock.Elapsed));
            if (context.Attempt <= 2)
            {
                throw new InvalidOperationException($"transient failure {context.Attempt}");
            }

            Interlocked.Increment(ref succeeded);
            return default;
        });
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d =>
            {
                d.MaxAttempts = 5;
                d.InitialBackoff = TimeSpan.FromMilliseconds(300);
                d.MaxBackoff = TimeSpan.FromSeconds(5);
            });

        await host.EnqueueAsync(new Numbered("c", 1), keyed ? "conversation-1" : null);
        await Eventually.TrueAsync(() => Volatile.Read(ref succeeded) == 1, "the third attempt to succeed");
        await Eventually.TrueAsync(async () => await host.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0 }, "the job to be acked and deleted");

        var runs = attempts.ToArray();
        Assert.Equal([1, 2, 3], runs.Select(r => r.Attempt));
        var first = runs[1].At - runs[0].At;
        var second = runs[2].At - runs[1].At;
        output.WriteLine($"keyed={keyed}: delay before attempt 2 = {first.TotalMilliseconds:F0} ms, before attempt 3 = {second.TotalMilliseconds:F0} ms");

        // Backoff is 300 ms then 600 ms, each ±20 %: lower bounds only (a loaded box can only make delays longer).
        Assert.True(first >= TimeSpan.FromMilliseconds(240 - 15), $"first retry after {first}");
        Assert.True(second >= TimeSpan.FromMilliseconds(480 - 15), $"second retry after {second}");
        Assert.True(second > first, $"delays should grow: {first} then {second}");

        var db = host.Multiplexer.GetDatabase();
        var keys = new RedisKeyspace(prefix, sharded: false);
        var stream = keyed ? keys.Partition(ChatScale.Dispatching.OrderingKeyHash.Lane("conversation-1", 16), "jobs") : keys.SharedJobs;
        Assert.Equal(0, await db.StreamLengthAsync(stream));
        Assert.Equal(0, (await db.StreamPendingAsync(stream, DispatcherScripts.Group)).PendingMessageCount);
        Assert.Empty(await host.Dispatcher.GetDeadLettersAsync());
    }

    [Fact]
    public async Task AlwaysFailingKeyedJob_IsDeadLetteredAfterMaxAttempts_WithItsError_ThenTheKeyMovesOn_AndReplayRunsItAgain()
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-dead");
        var events = new ConcurrentQueue<string>();
        var failing = true;
        var behavior = new JobBehavior<Numbered>((job, context, _) =>
        {
            if (job.Seq == 0 && Volatile.Read(ref failing))
            {
                events.Enqueue($"fail {context.Attempt}");
                throw new InvalidOperationException($"boom on attempt {context.Attempt}");
            }

            events.Enqueue($"ok {job.Seq} attempt {context.Attempt} id {context.JobId}");
            return default;
        });
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d =>
            {
                d.MaxAttempts = 3;
                d.InitialBackoff = TimeSpan.FromMilliseconds(10);
            });

        var before = DateTimeOffset.UtcNow;
        var doomed = await host.EnqueueAsync(new Numbered("conv-x", 0), "conv-x");
        for (var seq = 1; seq <= 3; seq++)
        {
            await host.EnqueueAsync(new Numbered("conv-x", seq), "conv-x");
        }

        await Eventually.TrueAsync(() => events.Count == 6, "three failures and three successes");

        // The failing job held back the jobs behind it with the same key until it was dead-lettered.
        Assert.Equal(["fail 1", "fail 2", "fail 3"], events.Take(3));
        Assert.Equal(["ok 1", "ok 2", "ok 3"], events.Skip(3).Select(e => e[..4]));

        var dead = Assert.Single(await host.Dispatcher.GetDeadLettersAsync());
        Assert.Equal(doomed, dead.JobId);
        Assert.Equal(typeof(Numbered).FullName, dead.JobType);
        Assert.Equal("conv-x", dead.OrderingKey);
        Assert.Equal(3, dead.Attempts);
        Assert.Equal($"{typeof(InvalidOperationException).FullName}: boom on attempt 3", dead.LastError);
        Assert.InRange(dead.EnqueuedAt, before.AddSeconds(-5), dead.DeadLetteredAt);
        Assert.Equal(1, (await host.Dispatcher.GetStatisticsAsync()).DeadLettered);

        Volatile.Write(ref failing, false);
        Assert.Equal(0, await host.Dispatcher.ReplayDeadLettersAsync("no-such-job"));
        Assert.Equal(1, await host.Dispatcher.ReplayDeadLettersAsync(doomed));
        await Eventually.TrueAsync(() => events.Count == 7, "the replayed job to run");
        Assert.Equal($"ok 0 attempt 1 id {doomed}", events.Last());
        Assert.Empty(await host.Dispatcher.GetDeadLettersAsync());
        await Eventually.TrueAsync(async () => await host.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0, DeadLettered: 0 }, "an empty backlog");
    }

    [Fact]
    public async Task AlwaysFailingUnkeyedJobs_AreDeadLettered_ReplayAllRunsThemAgain_AndPurgeDeletes()
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-dead-all");
        var failing = true;
        var attempts = new ConcurrentDictionary<int, int>();
        var succeeded = new ConcurrentBag<int>();
        var behavior = new JobBehavior<Numbered>((job, _, _) =>
        {
            attempts.AddOrUpdate(job.Seq, 1, static (_, n) => n + 1);
            if (Volatile.Read(ref failing))
            {
                throw new TimeoutException($"downstream timeout for {job.Seq}");
            }

            succeeded.Add(job.Seq);
            return default;
        });
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d =>
            {
                d.MaxAttempts = 2;
                d.InitialBackoff = TimeSpan.FromMilliseconds(10);
            });

        for (var i = 0; i < 3; i++)
        {
            await host.EnqueueAsync(new Numbered("none", i));
        }

        await Eventually.TrueAsync(async () => (await host.Dispatcher.GetDeadLettersAsync()).Count == 3, "three dead letters");
        Assert.All(attempts.Values, n => Assert.Equal(2, n));
        Assert.All(await host.Dispatcher.GetDeadLettersAsync(), d => Assert.StartsWith("System.TimeoutException: downstream timeout for ", d.LastError));
        Assert.Equal(2, (await host.Dispatcher.GetDeadLettersAsync(maxCount: 2)).Count);

        Volatile.Write(ref failing, false);
        Assert.Equal(3, await host.Dispatcher.ReplayDeadLettersAsync());
        await Eventually.TrueAsync(() => succeeded.Count == 3, "the replayed jobs to succeed");
        Assert.Equal([0, 1, 2], succeeded.Order());

        Volatile.Write(ref failing, true);
        await host.EnqueueAsync(new Numbered("none", 10));
        await host.EnqueueAsync(new Numbered("none", 11));
        await Eventually.TrueAsync(async () => (await host.Dispatcher.GetStatisticsAsync()).DeadLettered == 2, "two new dead letters");
        Assert.Equal(2, await host.Dispatcher.PurgeDeadLettersAsync());
        Assert.Empty(await host.Dispatcher.GetDeadLettersAsync());
        Assert.Equal(0, await host.Dispatcher.ReplayDeadLettersAsync());
    }
}
