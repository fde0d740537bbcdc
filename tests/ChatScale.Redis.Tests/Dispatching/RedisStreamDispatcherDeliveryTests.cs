using System.Collections.Concurrent;
using System.Diagnostics;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherDeliveryTests(RedisFixture redis, ITestOutputHelper output)
{
    [Fact]
    public async Task AddRedis_MakesTheRedisStreamDispatcherTheBackgroundDispatcher()
    {
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, RedisFixture.UniquePrefix("dispatch-di"), "node-a", b => b.AddBehavior(new JobBehavior<Numbered>((_, _, _) => default)), start: false);

        Assert.IsType<RedisStreamDispatcher>(host.Services.GetRequiredService<IBackgroundDispatcher>());
        Assert.Same(host.Services.GetRequiredService<RedisStreamDispatcher>(), host.Services.GetRequiredService<IBackgroundDispatcher>());
    }

    [Fact]
    public async Task DisposingARunningDispatcher_AfterItsConnectionWasDisposed_DoesNotThrow()
    {
        // A host torn down in another order (or a crash test) may dispose the shared connection first.
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, RedisFixture.UniquePrefix("dispatch-dispose"), "node-a", b => b.AddBehavior(new JobBehavior<Numbered>((_, _, _) => default)));
        await Eventually.TrueAsync(() => host.Dispatcher.OwnedPartitionCount == 16, "the dispatcher to own its partitions");

        await host.Multiplexer.CloseAsync(allowCommandsToComplete: false);
        host.Multiplexer.Dispose();

        await host.Dispatcher.DisposeAsync();
        await host.Dispatcher.StopAsync(CancellationToken.None);
        Assert.Equal(0, host.Dispatcher.OwnedPartitionCount);
    }

    [Fact]
    public async Task TenThousandJobs_EnqueuedAcrossTwoInstances_AreEachHandledExactlyOnce()
    {
        const int Jobs = 10_000;
        var prefix = RedisFixture.UniquePrefix("dispatch-10k");
        var handled = new ConcurrentDictionary<string, int>();
        var byHost = new ConcurrentDictionary<string, int>();
        JobBehavior<Numbered> Behavior(string host) => new((_, context, _) =>
        {
            handled.AddOrUpdate(context.JobId, 1, static (_, n) => n + 1);
            byHost.AddOrUpdate(host, 1, static (_, n) => n + 1);
            return default;
        });

        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")));
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")));
        var clock = Stopwatch.StartNew();

        // Half keyed (64 conversations), half unkeyed; every other job enqueued on the other node.
        var ids = new string[Jobs];
        await Parallel.ForEachAsync(Enumerable.Range(0, Jobs), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            var host = i % 2 == 0 ? a : b;
            ids[i] = await host.EnqueueAsync(new Numbered($"c{i % 64}", i), i % 4 < 2 ? $"c{i % 64}" : null);
        });
        var enqueued = clock.Elapsed;

        await Eventually.TrueAsync(() => handled.Count == Jobs, $"all {Jobs} jobs handled", TimeSpan.FromSeconds(120));
        await Eventually.TrueAsync(
            async () => await a.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0 } && await b.Dispatcher.GetStatisticsAsync() is { Pending: 0, InFlight: 0 },
            "both dispatchers to report an empty backlog");
        output.WriteLine($"enqueued {Jobs} in {enqueued.TotalMilliseconds:F0} ms, all handled after {clock.Elapsed.TotalMilliseconds:F0} ms; "
            + $"node-a ran {byHost.GetValueOrDefault("node-a")}, node-b ran {byHost.GetValueOrDefault("node-b")}");

        Assert.Equal(ids.Order(StringComparer.Ordinal), handled.Keys.Order(StringComparer.Ordinal));
        Assert.All(handled, pair => Assert.Equal(1, pair.Value));
        Assert.True(byHost.GetValueOrDefault("node-a") > 0 && byHost.GetValueOrDefault("node-b") > 0, "both instances should have run jobs");
        Assert.Equal(0, (await a.Dispatcher.GetStatisticsAsync()).DeadLettered);
    }
}
