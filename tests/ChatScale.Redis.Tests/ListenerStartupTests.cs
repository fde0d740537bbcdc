using System.Text;
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
/// Host startup waits for the listener's first subscription, so a node never takes clients it cannot yet deliver
/// to: a failed attempt (Redis not reachable yet) is retried before StartAsync completes.
/// </summary>
public sealed class ListenerStartupTests
{
    [Fact]
    public async Task StartAsync_WhileRedisIsUnreachable_CompletesOnlyOnceSubscribed_AndTheFirstPublishArrives()
    {
        await using var server = await RedisServer.StartNewAsync();
        await server.StopAsync();
        var prefix = RedisFixture.UniquePrefix("startup");
        var configuration = ConfigurationOptions.Parse(server.ConnectionString);
        configuration.AbortOnConnectFail = false;
        configuration.ConnectTimeout = 1000;
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);

        await using var services = new ServiceCollection().AddLogging().AddFakeLogging().BuildServiceProvider();
        var logs = services.GetRequiredService<FakeLogCollector>();
        var options = Options.Create(new ChatScaleOptions { NodeId = "node-b" });
        using var connections = new LocalConnections(options);
        var transport = new FakeTransport();
        connections.Add("bob", transport);
        await using var listener = new RedisBackplaneListener(
            multiplexer, connections, options, Options.Create(new ChatScaleRedisOptions { KeyPrefix = prefix }), services.GetRequiredService<ILoggerFactory>());

        var starting = listener.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => logs.GetSnapshot().Any(r => r.Id.Id == 2002), "a failed subscribe attempt");
        Assert.False(starting.IsCompleted, "startup must not complete while the node is not subscribed");

        await server.StartAsync();
        await starting.WaitAsync(TimeSpan.FromSeconds(30));

        // Subscribed before StartAsync returned: the very first publish reaches the node.
        await using var publisher = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var envelope = ChatScale.Backplane.EnvelopeCodec.Encode(ChatScale.Backplane.EnvelopeKind.Users, "node-a", Guid.NewGuid(), ["bob"], Encoding.UTF8.GetBytes("first"));
        var receivers = await publisher.GetSubscriber().PublishAsync(new RedisKeyspace(prefix, sharded: false).NodeChannel("node-b"), envelope);
        Assert.Equal(1, receivers);
        await Eventually.TrueAsync(() => transport.Count == 1, "the first publish to arrive");
        await listener.StopAsync(CancellationToken.None);
    }
}
