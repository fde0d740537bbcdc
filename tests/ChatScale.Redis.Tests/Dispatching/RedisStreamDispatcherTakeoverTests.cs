using System.Collections.Concurrent;
using System.Diagnostics;
using ChatScale.Redis.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherTakeoverTests(RedisFixture redis, ITestOutputHelper output)
{
    private static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task WorkerKilledMidJob_AnotherInstanceTakesOverAfterTheLeaseExpires_CompletesTheJob_AndKeepsTheOrder()
    {
        const int Messages = 30;
        const int KilledAt = 5;
        var prefix = RedisFixture.UniquePrefix("dispatch-takeover");
        var completed = new ConcurrentQueue<(int Seq, string Host, int Attempt)>();
        var stuck = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        JobBehavior<Numbered> Behavior(string host) => new(async (job, context, cancellationToken) =>
        {
            if (host == "node-a" && job.Seq == KilledAt)
            {
                // node-a "crashes" in the middle of this job: it never returns and is never acked.
                stuck.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            completed.Enqueue((job.Seq, host, context.Attempt));
        });

        void Options(DispatcherOptions d) => d.Partitions = 4;
        void RedisOptions(RedisDispatcherOptions r) => r.LeaseTtl = LeaseTtl;

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")), Options, RedisOptions);
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount == 4, "node-a to own every partition");
        for (var seq = 0; seq < Messages; seq++)
        {
            await a.EnqueueAsync(new Numbered("conv", seq), "conv");
        }

        await stuck.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")), Options, RedisOptions);

        var clock = Stopwatch.StartNew();
        await a.Dispatcher.AbandonAsync();
        await Eventually.TrueAsync(() => completed.Count == Messages, "node-b to finish the conversation", TimeSpan.FromSeconds(60));
        output.WriteLine($"node-a killed mid-job; node-b completed the rest {clock.ElapsedMilliseconds} ms later (lease TTL {LeaseTtl.TotalMilliseconds} ms)");

        var runs = completed.ToArray();
        Assert.Equal(Enumerable.Range(0, Messages), runs.Select(r => r.Seq));
        Assert.All(runs.Take(KilledAt), r => Assert.Equal("node-a", r.Host));
        Assert.All(runs.Skip(KilledAt), r => Assert.Equal("node-b", r.Host));

        // The interrupted job was claimed from node-a's pending entries before any new entry was read.
        Assert.True(b.Logs.GetSnapshot().Any(r => r.Id.Id == 2503 && r.Message.Contains("reclaimed", StringComparison.Ordinal) && !r.Message.Contains(" 0 unfinished", StringComparison.Ordinal)),
            "node-b should log that it reclaimed node-a's unfinished jobs");
        await Eventually.TrueAsync(async () => await b.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0 }, "an empty backlog");
        await Eventually.TrueAsync(() => b.Dispatcher.OwnedPartitionCount == 4, "node-b to own every partition");
    }

    [Fact]
    public async Task WorkerKilledMidUnkeyedJob_ALiveInstanceClaimsItsPendingEntryAfterItsMembershipExpires_AndRunsIt()
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-takeover-shared");
        var completed = new ConcurrentQueue<(string JobId, string Host)>();
        var stuck = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        JobBehavior<Numbered> Behavior(string host) => new(async (_, context, cancellationToken) =>
        {
            if (host == "node-a")
            {
                stuck.TrySetResult();
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            completed.Enqueue((context.JobId, host));
        });
        void RedisOptions(RedisDispatcherOptions r) => r.LeaseTtl = LeaseTtl;

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")), redis: RedisOptions);
        var id = await a.EnqueueAsync(new Numbered("none", 1));
        await stuck.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")), redis: RedisOptions);
        await a.Dispatcher.AbandonAsync();
        await Eventually.TrueAsync(() => !completed.IsEmpty, "node-b to run node-a's unfinished job", TimeSpan.FromSeconds(60));

        Assert.Equal([(id, "node-b")], completed);

        // The reclaim is logged after the claimed job was scheduled, so the job may finish first.
        await Eventually.TrueAsync(() => b.LogCount(2511) >= 1, "node-b to log the reclaim");
        Assert.Equal(1, b.LogCount(2511));
        await Eventually.TrueAsync(async () => await b.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0 }, "an empty backlog");
    }

    [Fact]
    public async Task GracefulStop_ReleasesPartitionsAtOnce_AndASecondInstanceRebalancesWithoutTwoOwners()
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-rebalance");
        var behavior = new JobBehavior<Numbered>((_, _, _) => default);
        void Options(DispatcherOptions d) => d.Partitions = 8;
        void RedisOptions(RedisDispatcherOptions r) => r.LeaseTtl = TimeSpan.FromSeconds(30);

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), Options, RedisOptions);
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount == 8, "node-a to own every partition");

        // A joins, B joins: the partitions split as rendezvous hashing says, and at no moment do both own more than all.
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(behavior), Options, RedisOptions);
        string[] members = [a.Dispatcher.InstanceId, b.Dispatcher.InstanceId];
        var expectedA = Enumerable.Range(0, 8).Count(p => ChatScale.Redis.Internal.Dispatching.RendezvousAssignment.Owner(p, members) == a.Dispatcher.InstanceId);
        await Eventually.TrueAsync(
            () =>
            {
                var (ca, cb) = (a.Dispatcher.OwnedPartitionCount, b.Dispatcher.OwnedPartitionCount);
                Assert.True(ca + cb <= 8, $"two owners at once: {ca} + {cb}");
                return ca == expectedA && cb == 8 - expectedA;
            },
            "the rendezvous split");

        // A leaves gracefully: with a 30 s lease, B can only have everything at once if A released its leases.
        await a.Dispatcher.StopAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => b.Dispatcher.OwnedPartitionCount == 8, "node-b to take every partition", TimeSpan.FromSeconds(20));
        Assert.True(a.LogCount(2504) >= expectedA, "node-a should log the partitions it released");
    }
}
