using System.Collections.Concurrent;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class InMemoryBackgroundDispatcherDeliveryTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EnqueueAsync_TenThousandJobsNothingFails_EachHandledExactlyOnce(bool keyed)
    {
        const int JobCount = 10_000;
        await using var harness = new DispatcherHarness(o => o.WorkerCount = 4);
        var handled = new ConcurrentDictionary<int, int>();
        harness.Probe.OnHandle = (job, _, _) =>
        {
            handled.AddOrUpdate(job.Sequence, 1, static (_, count) => count + 1);
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        for (var i = 0; i < JobCount; i++)
        {
            await harness.EnqueueAsync(keyed ? $"conversation-{i % 50}" : null, i);
        }

        var statistics = await harness.WaitForIdleAsync();

        Assert.Equal(JobCount, handled.Count);
        Assert.All(handled, pair => Assert.Equal(1, pair.Value));
        Assert.Equal(new DispatcherStatistics(0, 0, 0), statistics);
    }

    [Fact]
    public async Task EnqueueAsync_Job_HandlerSeesReturnedIdTypeKeyAndFirstAttempt()
    {
        await using var harness = new DispatcherHarness();
        var seen = new TaskCompletionSource<JobContext>(TaskCreationOptions.RunContinuationsAsynchronously);
        harness.Probe.OnHandle = (_, context, _) =>
        {
            seen.TrySetResult(context);
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        var id = await harness.EnqueueAsync("conversation-7", 1);
        var context = await seen.Task.WaitAsync(DispatcherHarness.Timeout);

        Assert.Equal(32, id.Length);
        Assert.Equal(id, context.JobId);
        Assert.Equal(typeof(TestJob).FullName, context.JobType);
        Assert.Equal("conversation-7", context.OrderingKey);
        Assert.Equal(1, context.Attempt);
    }

    [Fact]
    public async Task EnqueueAsync_BeforeStart_JobWaitsAndRunsAfterStart()
    {
        await using var harness = new DispatcherHarness();
        var handled = 0;
        harness.Probe.OnHandle = (_, _, _) =>
        {
            Interlocked.Increment(ref handled);
            return ValueTask.CompletedTask;
        };

        await harness.EnqueueAsync(null, 1);
        await harness.EnqueueAsync("k", 2);
        var before = await harness.Dispatcher.GetStatisticsAsync();
        await harness.StartAsync();
        await harness.WaitForIdleAsync();

        Assert.Equal(new DispatcherStatistics(2, 0, 0), before);
        Assert.Equal(2, Volatile.Read(ref handled));
    }

    [Fact]
    public async Task EnqueueAsync_UnregisteredJobType_ThrowsInvalidOperationNamingTypeAndAddJobHandler()
    {
        await using var harness = new DispatcherHarness();

        var exception = await Assert.ThrowsAsync<InvalidOperationException>(
            () => harness.Dispatcher.EnqueueAsync(new UnregisteredJob(1)).AsTask());

        Assert.Contains(typeof(UnregisteredJob).FullName!, exception.Message, StringComparison.Ordinal);
        Assert.Contains("AddJobHandler<TJob, THandler>()", exception.Message, StringComparison.Ordinal);
        Assert.Equal(0, (await harness.Dispatcher.GetStatisticsAsync()).Pending);
    }

    [Fact]
    public async Task EnqueueAsync_JobDeclaredAsObject_FindsRegistrationByRuntimeType()
    {
        await using var harness = new DispatcherHarness();
        var handled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        harness.Probe.OnHandle = (_, _, _) =>
        {
            handled.TrySetResult();
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        await harness.Dispatcher.EnqueueAsync<object>(new TestJob(null, 1));

        await handled.Task.WaitAsync(DispatcherHarness.Timeout);
    }

    [Fact]
    public async Task EnqueueAsync_QueueFull_WaitsUntilCancelledAndDoesNotAccept()
    {
        await using var harness = new DispatcherHarness(o => o.QueueCapacity = 2);
        await harness.EnqueueAsync(null, 1);
        await harness.EnqueueAsync("k", 2);
        using var cts = new CancellationTokenSource();

        var third = harness.Dispatcher.EnqueueAsync(new TestJob(null, 3), null, cts.Token).AsTask();
        var waitedForSpace = !third.IsCompleted;
        await cts.CancelAsync();

        Assert.True(waitedForSpace);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => third);
        Assert.Equal(2, (await harness.Dispatcher.GetStatisticsAsync()).Pending);
    }

    [Fact]
    public async Task EnqueueAsync_QueueFull_CompletesWhenAJobStarts()
    {
        await using var harness = new DispatcherHarness(o => o.QueueCapacity = 1);
        var handled = new ConcurrentQueue<int>();
        harness.Probe.OnHandle = (job, _, _) =>
        {
            handled.Enqueue(job.Sequence);
            return ValueTask.CompletedTask;
        };
        await harness.EnqueueAsync(null, 1);

        var second = harness.EnqueueAsync(null, 2).AsTask();
        var waitedForSpace = !second.IsCompleted;
        await harness.StartAsync();
        await second.WaitAsync(DispatcherHarness.Timeout);
        await harness.WaitForIdleAsync();

        Assert.True(waitedForSpace);
        Assert.Equal([1, 2], handled.Order());
    }

    [Fact]
    public async Task EnqueueAsync_AlreadyCancelledToken_Throws()
    {
        await using var harness = new DispatcherHarness();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => harness.Dispatcher.EnqueueAsync(new TestJob(null, 1), null, new CancellationToken(canceled: true)).AsTask());
        Assert.Equal(0, (await harness.Dispatcher.GetStatisticsAsync()).Pending);
    }

    [Fact]
    public async Task EnqueueAsync_RetriedJob_ResolvesANewScopedHandlerPerAttempt()
    {
        await using var harness = new DispatcherHarness(o =>
        {
            o.InitialBackoff = TimeSpan.Zero;
            o.MaxBackoff = TimeSpan.Zero;
        });
        harness.Probe.OnHandle = (_, context, _) => context.Attempt < 3 ? throw new InvalidOperationException("transient") : ValueTask.CompletedTask;
        await harness.StartAsync();

        await harness.EnqueueAsync(null, 1);
        await harness.WaitForIdleAsync();

        Assert.Equal(3, harness.Probe.HandlerInstances.Count);
        Assert.Equal(3, harness.Probe.HandlerInstances.Distinct(ReferenceEqualityComparer.Instance).Count());
    }
}
