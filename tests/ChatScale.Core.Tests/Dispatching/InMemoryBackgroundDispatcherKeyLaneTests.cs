using System.Collections.Concurrent;
using ChatScale.Dispatching;
using Microsoft.Extensions.Time.Testing;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class InMemoryBackgroundDispatcherKeyLaneTests
{
    [Fact]
    public async Task KeyedRetry_WaitingForBackoff_DoesNotHoldBackAnotherKeyEvenWithTheSameHash()
    {
        // One partition: every key would share one lane if lanes were per hash bucket.
        var time = new FakeTimeProvider();
        await using var harness = new DispatcherHarness(
            o =>
            {
                o.Partitions = 1;
                o.InitialBackoff = TimeSpan.FromSeconds(1);
                o.MaxBackoff = TimeSpan.FromSeconds(1);
            },
            time);
        var succeeded = new ConcurrentQueue<(string Key, int Sequence)>();
        harness.Probe.OnHandle = (job, context, _) =>
        {
            if (job.Key == "held" && job.Sequence == 1 && context.Attempt == 1)
            {
                throw new InvalidOperationException("first attempt fails");
            }

            succeeded.Enqueue((job.Key!, job.Sequence));
            return ValueTask.CompletedTask;
        };
        await harness.StartAsync();
        Assert.Equal(OrderingKeyHash.Lane("held", 1), OrderingKeyHash.Lane("other", 1));

        await harness.EnqueueAsync("held", 1);
        await harness.WaitForStatisticsAsync(s => !harness.Probe.HandlerInstances.IsEmpty && s is { Pending: 1, InFlight: 0 });
        await harness.EnqueueAsync("held", 2);
        for (var i = 1; i <= 10; i++)
        {
            await harness.EnqueueAsync("other", i);
        }

        await DispatcherHarness.WaitUntilAsync(() => succeeded.Count(e => e.Key == "other") == 10);
        var heldRanMeanwhile = succeeded.Any(e => e.Key == "held");
        await DispatcherHarness.WaitUntilAsync(() => succeeded.Contains(("held", 2)), () => time.Advance(TimeSpan.FromSeconds(1)));

        Assert.False(heldRanMeanwhile);
        Assert.Equal([1, 2], succeeded.Where(e => e.Key == "held").Select(e => e.Sequence));
        Assert.Equal(Enumerable.Range(1, 10), succeeded.Where(e => e.Key == "other").Select(e => e.Sequence));
    }
}
