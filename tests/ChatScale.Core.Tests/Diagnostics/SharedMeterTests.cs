using System.Diagnostics.Metrics;
using ChatScale.Connections;
using ChatScale.Core.Tests.TestSupport;
using ChatScale.Dispatching;
using ChatScale.InMemory;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Core.Tests.Diagnostics;

public sealed class SharedMeterTests
{
    [Fact]
    public async Task Components_sharing_one_meter_factory_publish_each_gauge_once()
    {
        await using var provider = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meterFactory = provider.GetRequiredService<IMeterFactory>();
        var options = Opts.Create();
        using var connections = new LocalConnections(options, meterFactory: meterFactory);
        await using var dispatcher = new InMemoryBackgroundDispatcher(
            options, provider.GetRequiredService<IServiceScopeFactory>(), Array.Empty<JobTypeRegistration>(), meterFactory: meterFactory);

        // The factory caches meters by name: this is the one meter every component of this provider records on.
        var meter = meterFactory.Create(new MeterOptions("ChatScale"));
        var published = new Dictionary<string, int>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter))
                {
                    published[instrument.Name] = published.GetValueOrDefault(instrument.Name) + 1;
                }
            },
        };
        listener.Start();

        Assert.Equal(1, published["chatscale.send_queue.depth"]);
        Assert.Equal(1, published["chatscale.dispatch.pending"]);
        Assert.Equal(1, published["chatscale.dispatch.in_flight"]);
        Assert.Equal(1, published["chatscale.dispatch.dead_lettered"]);
    }
}
