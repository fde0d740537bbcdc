using ChatScale.Dispatching;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using System.Diagnostics.Metrics;

namespace ChatScale.Redis.Tests.Dispatching;

[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherDiagnosticsTests(RedisFixture redis)
{
    [Fact]
    public async Task Statistics_AndPartitionLagGauges_CountWhatIsQueuedInRedis()
    {
        // Not started: nothing runs, so everything enqueued stays queued.
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, RedisFixture.UniquePrefix("dispatch-stats"), "node-a", b => b.AddBehavior(new JobBehavior<Numbered>((_, _, _) => default)), start: false);
        for (var i = 0; i < 3; i++)
        {
            await host.EnqueueAsync(new Numbered("conv-7", i), "conv-7");
        }

        await host.EnqueueAsync(new Numbered("none", 0));
        await host.EnqueueAsync(new Numbered("none", 1));

        Assert.Equal(new DispatcherStatistics(5, 0, 0), await host.Dispatcher.GetStatisticsAsync());

        using var lag = new MetricCollector<long>(host.Services.GetRequiredService<IMeterFactory>(), "ChatScale", "chatscale.dispatch.partition.lag");
        lag.RecordObservableInstruments();
        var byPartition = lag.GetMeasurementSnapshot().ToDictionary(m => (string)m.Tags["partition"]!, m => m.Value);
        Assert.Equal(17, byPartition.Count);
        Assert.Equal(3, byPartition[OrderingKeyHash.Lane("conv-7", 16).ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        Assert.Equal(2, byPartition["shared"]);
        Assert.Equal(5, byPartition.Values.Sum());

        using var pending = new MetricCollector<long>(host.Services.GetRequiredService<IMeterFactory>(), "ChatScale", "chatscale.dispatch.pending");
        pending.RecordObservableInstruments();
        Assert.Equal(5, pending.LastMeasurement?.Value);
    }

    [Fact]
    public void InvalidDispatcherOptions_FailValidation_NamingTheOption()
    {
        var options = new ChatScaleRedisOptions { ConnectionString = "localhost" };
        options.Dispatcher.LeaseTtl = TimeSpan.FromMilliseconds(100);
        options.Dispatcher.ReadBatchSize = 0;
        options.Dispatcher.MaxStreamLength = 0;

        var result = new ChatScaleRedisOptionsValidator(requiresConnectionString: true).Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains("ChatScale:Redis:Dispatcher:LeaseTtl", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("ChatScale:Redis:Dispatcher:ReadBatchSize", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("ChatScale:Redis:Dispatcher:MaxStreamLength", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EnqueueingAnUnregisteredJobType_ThrowsInvalidOperation_NamingTheFix()
    {
        await using var host = await DispatcherHost.StartAsync(
            redis.ConnectionString, RedisFixture.UniquePrefix("dispatch-unregistered"), "node-a", b => b.AddBehavior(new JobBehavior<Numbered>((_, _, _) => default)), start: false);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => host.EnqueueAsync("a string job").AsTask());
        Assert.Contains("AddJobHandler", error.Message, StringComparison.Ordinal);
    }
}
