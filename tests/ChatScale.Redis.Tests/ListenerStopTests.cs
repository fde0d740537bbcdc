using ChatScale.Connections;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests;

/// <summary>
/// The host's shutdown deadline is the listener's too: when its unsubscribes wait on a Redis that does not answer,
/// <c>StopAsync</c> returns at the deadline (logging it) instead of throwing into the host's shutdown.
/// </summary>
public sealed class ListenerStopTests
{
    [Fact]
    public async Task StopAsync_WhileRedisHoldsTheUnsubscribe_ReturnsAtTheDeadlineWithoutThrowing()
    {
        await using var server = await RedisServer.StartNewAsync();
        await using var proxy = new StallingProxy(server.ConnectionString);
        var configuration = ConfigurationOptions.Parse(proxy.ConnectionString);
        configuration.AsyncTimeout = 10_000; // the unsubscribe would wait this long; the deadline is shorter
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);

        await using var services = new ServiceCollection().AddLogging().AddFakeLogging().BuildServiceProvider();
        var logs = services.GetRequiredService<FakeLogCollector>();
        var options = Options.Create(new ChatScaleOptions { NodeId = "node-a" });
        using var connections = new LocalConnections(options);
        var listener = new RedisBackplaneListener(
            multiplexer, connections, options, Options.Create(new ChatScaleRedisOptions { KeyPrefix = RedisFixture.UniquePrefix("stop") }), services.GetRequiredService<ILoggerFactory>());
        await listener.StartAsync(CancellationToken.None);

        proxy.Stall(); // the unsubscribes reach nobody and no reply comes back
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        var stopping = listener.StopAsync(deadline.Token);
        var ended = await Task.WhenAny(stopping, Task.Delay(TimeSpan.FromSeconds(8)));

        Assert.Same(stopping, ended); // returned at the deadline, not after the command's own timeout
        await stopping; // and without an exception for the host
        Assert.True(deadline.IsCancellationRequested);
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 2009);

        proxy.Release();
        await listener.DisposeAsync();
    }
}
