using System.Collections.Concurrent;
using ChatScale.Dispatching;
using Microsoft.Extensions.Time.Testing;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class InMemoryBackgroundDispatcherOrderingTests
{
    private const int Partitions = 16;

    [Fact]
    public async Task KeyedJobs_RandomFailuresThenRetries_EachKeyHandledInEnqueueOrderWithNoneMissing()
    {
        const int Keys = 20;
        const int JobsPerKey = 200;
        await using var harness = new DispatcherHarness(o =>
        {
            o.WorkerCount = 4;
            o.Partitions = Partitions;
            o.MaxAttempts = 20; // 5 % failures: 20 in a row never happens.
            o.InitialBackoff = TimeSpan.FromMilliseconds(1);
            o.MaxBackoff = TimeSpan.FromMilliseconds(4);
        });
        var random = new Random(20_240_611);
        var failures = 0;
        var succeeded = new ConcurrentDictionary<string, List<int>>();
        harness.Probe.OnHandle = async (job, _, _) =>
        {
            await Task.Yield();
            bool fail;
            lock (random)
            {
                fail = random.NextDouble() < 0.05;
            }

            if (fail)
            {
                Interlocked.Increment(ref failures);
                throw new InvalidOperationException("random failure");
            }

            var list = succeeded.GetOrAdd(job.Key!, _ => []);
            lock (list)
            {
                list.Add(job.Sequence);
            }
        };
        await harness.StartAsync();

        for (var sequence = 0; sequence < JobsPerKey; sequence++)
        {
            for (var key = 0; key < Keys; key++)
            {
                await harness.EnqueueAsync($"conversation-{key}", sequence);
            }
        }

        var statistics = await harness.WaitForIdleAsync();

        Assert.InRange(Volatile.Read(ref failures), 50, Keys * JobsPerKey);
        Assert.Equal(0, statistics.DeadLettered);
        Assert.Equal(Keys, succeeded.Count);
        var expected = Enumerable.Range(0, JobsPerKey).ToList();
        Assert.All(succeeded, pair => Assert.Equal(expected, pair.Value));
    }

    [Fact]
    public async Task KeyedJobs_SameKey_NeverRunConcurrently()
    {
        await using var harness = new DispatcherHarness(o => o.WorkerCount = 4);
        var running = 0;
        var maxRunning = 0;
        harness.Probe.OnHandle = async (_, _, _) =>
        {
            var now = Interlocked.Increment(ref running);
            InterlockedMax(ref maxRunning, now);
            await Task.Delay(1);
            Interlocked.Decrement(ref running);
        };

        for (var i = 0; i < 100; i++)
        {
            await harness.EnqueueAsync("conversation-1", i);
        }

        await harness.StartAsync();
        await harness.WaitForIdleAsync();

        Assert.Equal(1, Volatile.Read(ref maxRunning));
        Assert.Equal(100, harness.Probe.HandlerInstances.Count);
    }

    [Fact]
    public async Task KeyedJobs_DifferentKeys_RunInParallel()
    {
        var (first, second) = KeysInDifferentLanes();
        await using var harness = new DispatcherHarness(o =>
        {
            o.WorkerCount = 2;
            o.Partitions = Partitions;
        });
        var metBoth = TwoJobRendezvous(harness, first);
        await harness.StartAsync();

        await harness.EnqueueAsync(first, 1);
        await harness.EnqueueAsync(second, 1);
        await harness.WaitForIdleAsync();

        // Each handler waited for the other to start: both met only if the two keys' handlers overlapped.
        Assert.True(metBoth());
    }

    [Fact]
    public async Task UnkeyedJobs_RunInParallel()
    {
        await using var harness = new DispatcherHarness(o => o.WorkerCount = 2);
        var metBoth = TwoJobRendezvous(harness, null);
        await harness.StartAsync();

        await harness.EnqueueAsync(null, 1);
        await harness.EnqueueAsync(null, 2);
        await harness.WaitForIdleAsync();

        Assert.True(metBoth());
    }

    [Fact]
    public async Task WorkerCount_KeyedAndUnkeyedJobs_NeverMoreHandlersAtOnce()
    {
        await using var harness = new DispatcherHarness(o =>
        {
            o.WorkerCount = 2;
            o.Partitions = Partitions;
        });
        var running = 0;
        var maxRunning = 0;
        harness.Probe.OnHandle = async (_, _, _) =>
        {
            InterlockedMax(ref maxRunning, Interlocked.Increment(ref running));
            await Task.Delay(10);
            Interlocked.Decrement(ref running);
        };
        for (var i = 0; i < 32; i++)
        {
            await harness.EnqueueAsync(i % 2 == 0 ? $"conversation-{i}" : null, i);
        }

        await harness.StartAsync();
        await harness.WaitForIdleAsync();

        Assert.InRange(Volatile.Read(ref maxRunning), 1, 2);
        Assert.Equal(32, harness.Probe.HandlerInstances.Count);
    }

    [Fact]
    public async Task KeyedRetry_WaitingForBackoff_HoldsBackOnlyItsOwnKeysLane()
    {
        var (held, other) = KeysInDifferentLanes();
        var time = new FakeTimeProvider();
        await using var harness = new DispatcherHarness(
            o =>
            {
                o.Partitions = Partitions;
                o.InitialBackoff = TimeSpan.FromSeconds(1);
                o.MaxBackoff = TimeSpan.FromSeconds(1);
            },
            time);
        var succeeded = new ConcurrentQueue<(string Key, int Sequence)>();
        harness.Probe.OnHandle = (job, context, _) =>
        {
            if (job.Key == held && job.Sequence == 1 && context.Attempt == 1)
            {
                throw new InvalidOperationException("first attempt fails");
            }

            succeeded.Enqueue((job.Key!, job.Sequence));
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        await harness.EnqueueAsync(held, 1);
        await WaitForFirstAttemptToFailAsync(harness);
        await harness.EnqueueAsync(held, 2);
        await harness.EnqueueAsync(other, 1);
        await DispatcherHarness.WaitUntilAsync(() => succeeded.Contains((other, 1)));
        var pendingWhileHeld = (await harness.Dispatcher.GetStatisticsAsync()).Pending;
        var heldBackJobRan = succeeded.Contains((held, 2));

        // The retry delay runs on fake time: advance it until the held key's jobs have run.
        await DispatcherHarness.WaitUntilAsync(() => succeeded.Contains((held, 2)), () => time.Advance(TimeSpan.FromSeconds(1)));

        Assert.False(heldBackJobRan);
        Assert.Equal(2, pendingWhileHeld);
        Assert.Equal([1, 2], succeeded.Where(e => e.Key == held).Select(e => e.Sequence));
    }

    [Fact]
    public async Task UnkeyedRetry_WaitingForBackoff_DoesNotHoldTheWorker()
    {
        var time = new FakeTimeProvider();
        await using var harness = new DispatcherHarness(
            o =>
            {
                o.WorkerCount = 1;
                o.InitialBackoff = TimeSpan.FromSeconds(1);
                o.MaxBackoff = TimeSpan.FromSeconds(1);
            },
            time);
        var succeeded = new ConcurrentQueue<int>();
        harness.Probe.OnHandle = (job, context, _) =>
        {
            if (job.Sequence == 1 && context.Attempt == 1)
            {
                throw new InvalidOperationException("first attempt fails");
            }

            succeeded.Enqueue(job.Sequence);
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();

        await harness.EnqueueAsync(null, 1);
        await WaitForFirstAttemptToFailAsync(harness);
        await harness.EnqueueAsync(null, 2);
        await DispatcherHarness.WaitUntilAsync(() => succeeded.Contains(2));
        var firstRanBeforeSecond = succeeded.Contains(1);
        await DispatcherHarness.WaitUntilAsync(() => succeeded.Contains(1), () => time.Advance(TimeSpan.FromSeconds(1)));

        Assert.False(firstRanBeforeSecond);
        Assert.Equal([2, 1], succeeded.ToArray());
    }

    /// <summary>Waits until the one job enqueued so far has run once and is waiting for its retry.</summary>
    private static Task<DispatcherStatistics> WaitForFirstAttemptToFailAsync(DispatcherHarness harness)
        => harness.WaitForStatisticsAsync(s => !harness.Probe.HandlerInstances.IsEmpty && s is { Pending: 1, InFlight: 0 });

    /// <summary>Two distinct keys that hash to different lanes among <see cref="Partitions"/>.</summary>
    private static (string First, string Second) KeysInDifferentLanes()
    {
        const string first = "conversation-a";
        for (var i = 0; ; i++)
        {
            var second = $"conversation-{i}";
            if (OrderingKeyHash.Lane(second, Partitions) != OrderingKeyHash.Lane(first, Partitions))
            {
                return (first, second);
            }
        }
    }

    /// <summary>
    /// Makes two jobs (sequence 1 of <paramref name="firstKey"/>, and the other one) wait for each other to start.
    /// Returns a check that each saw the other running: false if one gave up waiting because they ran one at a time.
    /// </summary>
    private static Func<bool> TwoJobRendezvous(DispatcherHarness harness, string? firstKey)
    {
        var arrivals = new[]
        {
            new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously),
            new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously),
        };
        var met = new bool[2];
        harness.Probe.OnHandle = async (job, _, _) =>
        {
            var me = job.Sequence == 1 && job.Key == firstKey ? 0 : 1;
            arrivals[me].TrySetResult();
            try
            {
                await arrivals[1 - me].Task.WaitAsync(DispatcherHarness.Timeout);
                Volatile.Write(ref met[me], true);
            }
            catch (TimeoutException)
            {
                // Ran alone: the assertion on MetBoth reports it.
            }
        };
        return () => Volatile.Read(ref met[0]) && Volatile.Read(ref met[1]);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
