using System.Text;
using ChatScale.Connections;
using ChatScale.InMemory;
using ChatScale.Redis.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using StackExchange.Redis;
using System.Diagnostics.Metrics;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>
/// One ChatScale node inside the test process, wired exactly as an application would be: the registrations
/// <c>AddChatScale()</c> makes (in-memory defaults) followed by <c>AddRedis()</c>, over the node's own Redis connection.
/// Its hosted services (backplane listener, presence sweeper) are started by <see cref="StartAsync"/>.
/// </summary>
public sealed class TestNode : IAsyncDisposable
{
    private readonly ServiceProvider _provider;
    private readonly List<IHostedService> _started = [];

    private TestNode(string nodeId, ConnectionMultiplexer multiplexer, ServiceProvider provider)
    {
        NodeId = nodeId;
        Multiplexer = multiplexer;
        _provider = provider;
        var meters = provider.GetRequiredService<IMeterFactory>();
        Received = new MetricCollector<long>(meters, "ChatScale", "chatscale.backplane.received");
        Malformed = new MetricCollector<long>(meters, "ChatScale", "chatscale.backplane.malformed");
        Swept = new MetricCollector<long>(meters, "ChatScale", "chatscale.presence.swept");
    }

    public string NodeId { get; }

    public ConnectionMultiplexer Multiplexer { get; }

    public IServiceProvider Services => _provider;

    public LocalConnections Connections => _provider.GetRequiredService<LocalConnections>();

    public IMessageBroadcaster Broadcaster => _provider.GetRequiredService<IMessageBroadcaster>();

    public IConnectionRegistry Registry => _provider.GetRequiredService<IConnectionRegistry>();

    /// <summary>Envelopes this node's listener received and delivered.</summary>
    public MetricCollector<long> Received { get; }

    public MetricCollector<long> Malformed { get; }

    public MetricCollector<long> Swept { get; }

    /// <summary>Every log record of this node.</summary>
    public FakeLogCollector Logs => _provider.GetRequiredService<FakeLogCollector>();

    /// <summary>How many records with <paramref name="eventId"/> this node has logged.</summary>
    public int LogCount(int eventId) => Logs.GetSnapshot().Count(r => r.Id.Id == eventId);

    public long ReceivedCount => Sum(Received);

    public long MalformedCount => Sum(Malformed);

    public static async Task<TestNode> StartAsync(
        string connectionString,
        string keyPrefix,
        string nodeId,
        Action<ChatScaleRedisOptions>? redis = null,
        Action<ChatScaleOptions>? core = null,
        bool startSweeper = false)
    {
        var configuration = RedisConnectionDefaults.Create(connectionString); // as AddRedis connects
        configuration.ConnectTimeout = 5000;
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);

        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddLogging(b => b.AddFilter("ChatScale.Redis.Internal.GroupNode", LogLevel.Debug)); // group tests read its Debug events
        services.AddFakeLogging();

        // What AddChatScale() registers (the AspNetCore package), reduced to the parts AddRedis must replace or use.
        services.AddOptions<ChatScaleOptions>().Configure(o =>
        {
            o.NodeId = nodeId;
            core?.Invoke(o);
        });
        services.AddSingleton<LocalConnections>();
        services.AddSingleton<IMessageBroadcaster, InMemoryMessageBroadcaster>();
        services.AddSingleton<IConnectionRegistry, InMemoryConnectionRegistry>();

        services.AddSingleton<IConnectionMultiplexer>(multiplexer);
        new TestChatScaleBuilder(services).AddRedis(o =>
        {
            o.KeyPrefix = keyPrefix;
            redis?.Invoke(o);
        });

        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        var node = new TestNode(nodeId, multiplexer, provider);
        foreach (var hosted in provider.GetServices<IHostedService>())
        {
            if (!startSweeper && hosted.GetType().Name == "PresenceSweeper")
            {
                continue;
            }

            await hosted.StartAsync(CancellationToken.None);
            node._started.Add(hosted);
        }

        return node;
    }

    /// <summary>Opens a connection for <paramref name="userId"/> on this node and registers it in presence.</summary>
    public async Task<FakeTransport> ConnectAsync(string userId)
    {
        var transport = new FakeTransport();
        var connection = Connections.Add(userId, transport);
        await Registry.RegisterAsync(new ConnectionRegistration(connection.ConnectionId, userId, NodeId));
        return transport;
    }

    public ValueTask<PublishResult> PublishAsync(string text, params string[] userIds)
        => Broadcaster.PublishAsync(userIds, Encoding.UTF8.GetBytes(text));

    public async ValueTask DisposeAsync()
    {
        foreach (var hosted in _started)
        {
            await hosted.StopAsync(CancellationToken.None);
        }

        Received.Dispose();
        Malformed.Dispose();
        Swept.Dispose();
        await _provider.DisposeAsync();
        await Multiplexer.DisposeAsync();
    }

    private static long Sum(MetricCollector<long> collector)
        => collector.GetMeasurementSnapshot().Sum(m => m.Value);

    private sealed class TestChatScaleBuilder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
