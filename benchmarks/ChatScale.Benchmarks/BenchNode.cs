using ChatScale.Connections;
using ChatScale.InMemory;
using ChatScale.Redis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>
/// One ChatScale node on a real Redis for the end-to-end benchmarks: what <c>AddChatScale()</c> registers, then
/// <c>AddRedis()</c> (and whatever <c>configure</c> adds), with its hosted services started (the presence sweeper
/// excepted: nothing to sweep in a benchmark).
/// </summary>
internal sealed class BenchNode : IAsyncDisposable
{
    private readonly List<IHostedService> _started = [];
    private readonly ConnectionMultiplexer _multiplexer;

    private BenchNode(ServiceProvider services, ConnectionMultiplexer multiplexer)
    {
        Services = services;
        _multiplexer = multiplexer;
    }

    public ServiceProvider Services { get; }

    public LocalConnections Connections => Services.GetRequiredService<LocalConnections>();

    public IConnectionRegistry Registry => Services.GetRequiredService<IConnectionRegistry>();

    public IMessageBroadcaster Broadcaster => Services.GetRequiredService<IMessageBroadcaster>();

    public static async Task<BenchNode> StartAsync(string connectionString, string nodeId, string keyPrefix, Action<IServiceCollection, IChatScaleBuilder>? configure = null)
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
        var builder = new Builder(services).AddRedis(o => o.KeyPrefix = keyPrefix);
        configure?.Invoke(services, builder);
        var provider = services.BuildServiceProvider();
        var node = new BenchNode(provider, multiplexer);
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

        await Services.DisposeAsync();
        await _multiplexer.DisposeAsync();
    }

    private sealed class Builder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}

/// <summary>A transport whose sends complete at once and count down to the end of one benchmark operation.</summary>
internal sealed class CountdownTransport : IConnectionTransport
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
