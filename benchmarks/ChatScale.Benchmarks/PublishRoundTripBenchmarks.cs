using BenchmarkDotNet.Attributes;
using ChatScale.Connections;
using ChatScale.InMemory;
using ChatScale.Redis;
using ChatScale.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>
/// Publish round-trip through a real redis-server: <see cref="IMessageBroadcaster.PublishAsync"/> on node A (presence
/// lookup + PUBLISH) until node B's listener has handed the frame to all N recipients' transports in its
/// <see cref="LocalConnections"/>. Two nodes in one process, each with its own Redis connection, wired as
/// <c>AddChatScale().AddRedis()</c> wires them.
/// </summary>
[MemoryDiagnoser]
public class PublishRoundTripBenchmarks
{
    private RedisServer _redis = null!;
    private Node _a = null!;
    private Node _b = null!;
    private string[] _users = null!;
    private CountdownTransport _transport = null!;
    private readonly byte[] _payload = new byte[256];

    [Params(1, 50)]
    public int Recipients { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _a = await Node.StartAsync(_redis.ConnectionString, "node-a");
        _b = await Node.StartAsync(_redis.ConnectionString, "node-b");
        _transport = new CountdownTransport();
        _users = new string[Recipients];
        for (var i = 0; i < Recipients; i++)
        {
            _users[i] = $"user-{i:D6}";
            var connection = _b.Connections.Add(_users[i], _transport);
            await _b.Registry.RegisterAsync(new ConnectionRegistration(connection.ConnectionId, _users[i], "node-b"));
        }

        await _b.Registry.HeartbeatAsync("node-b");
        await RoundTrip();
    }

    [Benchmark]
    public async Task RoundTrip()
    {
        var delivered = _transport.Expect(Recipients);
        await _a.Broadcaster.PublishAsync(_users, _payload);
        await delivered;
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private sealed class Node : IAsyncDisposable
    {
        private readonly ServiceProvider _provider;
        private readonly List<IHostedService> _started = [];
        private readonly ConnectionMultiplexer _multiplexer;

        private Node(ServiceProvider provider, ConnectionMultiplexer multiplexer)
        {
            _provider = provider;
            _multiplexer = multiplexer;
        }

        public LocalConnections Connections => _provider.GetRequiredService<LocalConnections>();

        public IConnectionRegistry Registry => _provider.GetRequiredService<IConnectionRegistry>();

        public IMessageBroadcaster Broadcaster => _provider.GetRequiredService<IMessageBroadcaster>();

        public static async Task<Node> StartAsync(string connectionString, string nodeId)
        {
            var multiplexer = await ConnectionMultiplexer.ConnectAsync(connectionString);
            var services = new ServiceCollection();
            services.AddLogging();
            services.AddMetrics();
            // What AddChatScale() registers before AddRedis() replaces the in-memory services.
            services.AddOptions<ChatScaleOptions>().Configure(o => o.NodeId = nodeId);
            services.AddSingleton<LocalConnections>();
            services.AddSingleton<IMessageBroadcaster, InMemoryMessageBroadcaster>();
            services.AddSingleton<IConnectionRegistry, InMemoryConnectionRegistry>();
            services.AddSingleton<IConnectionMultiplexer>(multiplexer);
            new Builder(services).AddRedis(o => o.KeyPrefix = "bench");
            var provider = services.BuildServiceProvider();
            var node = new Node(provider, multiplexer);
            foreach (var hosted in provider.GetServices<IHostedService>())
            {
                if (hosted.GetType().Name == "PresenceSweeper")
                {
                    continue;
                }

                await hosted.StartAsync(CancellationToken.None);
                node._started.Add(hosted);
            }

            return node;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var hosted in _started)
            {
                await hosted.StopAsync(CancellationToken.None);
            }

            await _provider.DisposeAsync();
            await _multiplexer.DisposeAsync();
        }
    }

    private sealed class Builder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }

    /// <summary>A transport whose sends complete at once and count down to the end of one round-trip.</summary>
    private sealed class CountdownTransport : IConnectionTransport
    {
        private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _remaining;

        public Task Expect(int count)
        {
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _remaining, count);
            return _done.Task;
        }

        public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
        {
            if (Interlocked.Decrement(ref _remaining) == 0)
            {
                _done.TrySetResult();
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
