using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Time.Testing;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class InMemoryBackgroundDispatcherRetryTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(null)]
    [InlineData("conversation-1")]
    public async Task HandlerFailsTwiceThenSucceeds_RetriedAfterGrowingDelaysAndSucceeds(string? key)
    {
        var initial = TimeSpan.FromMilliseconds(100);
        await using var harness = new DispatcherHarness(o =>
        {
            o.InitialBackoff = initial;
            o.MaxBackoff = TimeSpan.FromSeconds(10);
        });
        var attemptTimestamps = new ConcurrentQueue<long>();
        harness.Probe.OnHandle = (_, context, _) =>
        {
            attemptTimestamps.Enqueue(Stopwatch.GetTimestamp());
            return context.Attempt <= 2 ? throw new TimeoutException($"attempt {context.Attempt}") : ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        await harness.EnqueueAsync(key, 1);
        var statistics = await harness.WaitForIdleAsync();

        var stamps = attemptTimestamps.ToArray();
        Assert.Equal(3, stamps.Length);
        Assert.Equal(new DispatcherStatistics(0, 0, 0), statistics);

        // The scheduled delays (logged with each retry) are 100 ms then 200 ms, each ±20 %.
        var delays = harness.Logs.GetSnapshot()
            .Where(r => r.Id.Id == 1101)
            .Select(r => TimeSpan.Parse(r.GetStructuredStateValue("Delay")!, System.Globalization.CultureInfo.InvariantCulture))
            .ToArray();
        Assert.Equal(2, delays.Length);
        Assert.InRange(delays[0], initial * 0.8, initial * 1.2);
        Assert.InRange(delays[1], initial * 1.6, initial * 2.4);

        // And the handler really waited at least that long between attempts (timer granularity aside).
        var tolerance = TimeSpan.FromMilliseconds(5);
        Assert.True(Stopwatch.GetElapsedTime(stamps[0], stamps[1]) >= delays[0] - tolerance);
        Assert.True(Stopwatch.GetElapsedTime(stamps[1], stamps[2]) >= delays[1] - tolerance);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("conversation-1")]
    public async Task HandlerAlwaysFails_DeadLetteredAfterMaxAttemptsWithLastError(string? key)
    {
        var time = new FakeTimeProvider(Start);
        await using var harness = ZeroBackoffHarness(time, maxAttempts: 3);
        harness.Probe.OnHandle = (_, context, _) => throw new InvalidOperationException($"broken on attempt {context.Attempt}");

        var id = await harness.EnqueueAsync(key, 1);
        time.Advance(TimeSpan.FromMinutes(1));
        await harness.StartAsync();
        var statistics = await harness.WaitForStatisticsAsync(s => s.DeadLettered == 1);

        var dead = Assert.Single(await harness.Dispatcher.GetDeadLettersAsync());
        Assert.Equal(new DeadLetteredJob(id, typeof(TestJob).FullName!, key, 3, "System.InvalidOperationException: broken on attempt 3", Start, Start.AddMinutes(1)), dead);
        Assert.Equal(new DispatcherStatistics(0, 0, 1), statistics);
        Assert.Equal(3, harness.Probe.HandlerInstances.Count);
    }

    [Fact]
    public async Task HandlerAlwaysFails_LaterJobsStillProcessed()
    {
        await using var harness = ZeroBackoffHarness(new FakeTimeProvider(Start), maxAttempts: 2);
        var succeeded = new ConcurrentQueue<int>();
        harness.Probe.OnHandle = (job, _, _) =>
        {
            if (job.Sequence == 1)
            {
                throw new InvalidOperationException("poison");
            }

            succeeded.Enqueue(job.Sequence);
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        await harness.EnqueueAsync("conversation-1", 1);
        await harness.EnqueueAsync("conversation-1", 2);
        await harness.EnqueueAsync(null, 3);
        var statistics = await harness.WaitForIdleAsync();

        Assert.Equal(1, statistics.DeadLettered);
        Assert.Equal([2, 3], succeeded.Order());
    }

    [Fact]
    public async Task ReplayDeadLettersAsync_HandlerNowSucceeds_JobRunsAgainWithFreshAttemptCount()
    {
        await using var harness = ZeroBackoffHarness(new FakeTimeProvider(Start), maxAttempts: 2);
        var healthy = false;
        var succeeded = new ConcurrentQueue<JobContext>();
        harness.Probe.OnHandle = (_, context, _) =>
        {
            if (!Volatile.Read(ref healthy))
            {
                throw new InvalidOperationException("down");
            }

            succeeded.Enqueue(context);
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();
        var id = await harness.EnqueueAsync(null, 1);
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 1);

        Volatile.Write(ref healthy, true);
        var replayed = await harness.Dispatcher.ReplayDeadLettersAsync();
        var statistics = await harness.WaitForIdleAsync();

        Assert.Equal(1, replayed);
        var context = Assert.Single(succeeded);
        Assert.Equal(id, context.JobId);
        Assert.Equal(1, context.Attempt);
        Assert.Equal(new DispatcherStatistics(0, 0, 0), statistics);
        Assert.Empty(await harness.Dispatcher.GetDeadLettersAsync());
    }

    [Fact]
    public async Task ReplayDeadLettersAsync_StillFailing_DeadLettersAgainAfterMaxAttempts()
    {
        await using var harness = ZeroBackoffHarness(new FakeTimeProvider(Start), maxAttempts: 2);
        harness.Probe.OnHandle = (_, _, _) => throw new InvalidOperationException("down");
        await harness.StartAsync();
        await harness.EnqueueAsync(null, 1);
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 1);

        await harness.Dispatcher.ReplayDeadLettersAsync();
        await harness.WaitForStatisticsAsync(s => s is { DeadLettered: 1, Pending: 0, InFlight: 0 });

        Assert.Equal(4, harness.Probe.HandlerInstances.Count);
        Assert.Equal(2, Assert.Single(await harness.Dispatcher.GetDeadLettersAsync()).Attempts);
    }

    [Fact]
    public async Task ReplayDeadLettersAsync_ById_ReplaysOnlyThatJob()
    {
        await using var harness = ZeroBackoffHarness(new FakeTimeProvider(Start), maxAttempts: 1);
        var healthy = false;
        var succeeded = new ConcurrentQueue<int>();
        harness.Probe.OnHandle = (job, _, _) =>
        {
            if (!Volatile.Read(ref healthy))
            {
                throw new InvalidOperationException("down");
            }

            succeeded.Enqueue(job.Sequence);
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();
        await harness.EnqueueAsync(null, 1);
        var second = await harness.EnqueueAsync(null, 2);
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 2);

        Volatile.Write(ref healthy, true);
        var replayed = await harness.Dispatcher.ReplayDeadLettersAsync(second);
        var unknown = await harness.Dispatcher.ReplayDeadLettersAsync("no-such-job");
        var statistics = await harness.WaitForIdleAsync();

        Assert.Equal(1, replayed);
        Assert.Equal(0, unknown);
        Assert.Equal([2], succeeded.ToArray());
        Assert.Equal(1, statistics.DeadLettered);
        Assert.NotEqual(second, Assert.Single(await harness.Dispatcher.GetDeadLettersAsync()).JobId);
    }

    [Fact]
    public async Task ReplayDeadLettersAsync_KeyedJob_RunsInItsKeysLaneBehindQueuedJobs()
    {
        await using var harness = ZeroBackoffHarness(new FakeTimeProvider(Start), maxAttempts: 1);
        var healthy = false;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var succeeded = new ConcurrentQueue<(int Sequence, string? Key)>();
        harness.Probe.OnHandle = async (job, context, cancellationToken) =>
        {
            if (job.Sequence == 2)
            {
                await gate.Task.WaitAsync(cancellationToken);
            }

            if (!Volatile.Read(ref healthy))
            {
                throw new InvalidOperationException("down");
            }

            succeeded.Enqueue((job.Sequence, context.OrderingKey));
        };
        await harness.StartAsync();
        await harness.EnqueueAsync("conversation-1", 1);
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 1);
        Volatile.Write(ref healthy, true);

        // Job 2 holds the lane; the replayed job 1 must queue behind it, like a newly enqueued job of the key.
        await harness.EnqueueAsync("conversation-1", 2);
        await harness.WaitForStatisticsAsync(s => s.InFlight == 1);
        await harness.Dispatcher.ReplayDeadLettersAsync();
        var replayedRanWhileLaneBusy = !succeeded.IsEmpty;
        gate.SetResult();
        await harness.WaitForIdleAsync();

        Assert.False(replayedRanWhileLaneBusy);
        Assert.Equal([(2, "conversation-1"), (1, "conversation-1")], succeeded.ToArray());
    }

    [Fact]
    public async Task PurgeDeadLettersAsync_DeadLetters_RemovesAllAndReturnsCount()
    {
        await using var harness = ZeroBackoffHarness(new FakeTimeProvider(Start), maxAttempts: 1);
        harness.Probe.OnHandle = (_, _, _) => throw new InvalidOperationException("down");
        await harness.StartAsync();
        await harness.EnqueueAsync(null, 1);
        await harness.EnqueueAsync("k", 2);
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 2);

        var purged = await harness.Dispatcher.PurgeDeadLettersAsync();

        Assert.Equal(2, purged);
        Assert.Empty(await harness.Dispatcher.GetDeadLettersAsync());
        Assert.Equal(0, (await harness.Dispatcher.GetStatisticsAsync()).DeadLettered);
        Assert.Equal(0, await harness.Dispatcher.ReplayDeadLettersAsync());
    }

    [Fact]
    public async Task GetDeadLettersAsync_MaxCount_ReturnsThatManyOldestFirst()
    {
        var time = new FakeTimeProvider(Start);
        await using var harness = ZeroBackoffHarness(time, maxAttempts: 1, workerCount: 1);
        harness.Probe.OnHandle = (_, _, _) => throw new InvalidOperationException("down");
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add(await harness.EnqueueAsync(null, i));
        }

        await harness.StartAsync();
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 3);

        var firstTwo = await harness.Dispatcher.GetDeadLettersAsync(maxCount: 2);

        Assert.Equal(ids.Take(2), firstTwo.Select(d => d.JobId));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("conversation-1")]
    public async Task HandlerFails_HugeBackoffOptions_RetryWaitsWithoutFailingTheLoop(string? key)
    {
        var time = new FakeTimeProvider(Start);
        await using var harness = new DispatcherHarness(
            o =>
            {
                o.InitialBackoff = TimeSpan.FromDays(3650);
                o.MaxBackoff = TimeSpan.MaxValue;
            },
            time);
        harness.Probe.OnHandle = (_, context, _) => context.Attempt == 1 ? throw new InvalidOperationException("once") : ValueTask.CompletedTask;
        await harness.StartAsync();

        await harness.EnqueueAsync(key, 1);
        await DispatcherHarness.WaitUntilAsync(() => harness.Probe.HandlerInstances.Count == 2, () => time.Advance(TimeSpan.FromDays(10)));
        var statistics = await harness.WaitForIdleAsync();

        Assert.Equal(new DispatcherStatistics(0, 0, 0), statistics);
        Assert.DoesNotContain(harness.Logs.GetSnapshot(), r => r.Id.Id == 1105);
    }

    private static DispatcherHarness ZeroBackoffHarness(TimeProvider time, int maxAttempts, int workerCount = 2) => new(
        o =>
        {
            o.WorkerCount = workerCount;
            o.MaxAttempts = maxAttempts;
            o.InitialBackoff = TimeSpan.Zero;
            o.MaxBackoff = TimeSpan.Zero;
        },
        time);
}
