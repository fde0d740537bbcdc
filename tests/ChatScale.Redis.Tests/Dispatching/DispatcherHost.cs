using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// One node running a <see cref="RedisStreamDispatcher"/>, wired through <c>AddRedis()</c> exactly as an application
/// would (its own Redis connection, its own service provider). Its RedisMessageBroadcaster works too, so handlers can
/// publish over the backplane to participants on <see cref="TestNode"/>s with the same key prefix.
/// </summary>
internal sealed class DispatcherHost : IAsyncDisposable
{
    private readonly ServiceProvider _provider;

    private DispatcherHost(string name, ConnectionMultiplexer multiplexer, ServiceProvider provider)
    {
        Name = name;
        Multiplexer = multiplexer;
        _provider = provider;
        Dispatcher = (RedisStreamDispatcher)provider.GetRequiredService<IBackgroundDispatcher>();
    }

    public string Name { get; }

    public ConnectionMultiplexer Multiplexer { get; }

    public RedisStreamDispatcher Dispatcher { get; }

    public IServiceProvider Services => _provider;

    public FakeLogCollector Logs => _provider.GetRequiredService<FakeLogCollector>();

    public int LogCount(int eventId) => Logs.GetSnapshot().Count(r => r.Id.Id == eventId);

    public static async Task<DispatcherHost> StartAsync(
        string connectionString,
        string keyPrefix,
        string name,
        Action<IChatScaleBuilder> jobs,
        Action<DispatcherOptions>? dispatcher = null,
        Action<RedisDispatcherOptions>? redis = null,
        bool start = true,
        Action<ConfigurationOptions>? connection = null)
    {
        var configuration = RedisConnectionDefaults.Create(connectionString); // as AddRedis connects
        configuration.ConnectTimeout = 5000;
        connection?.Invoke(configuration);
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);

        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Debug)); // routine partition events are Debug
        services.AddFakeLogging();
        services.AddOptions<ChatScaleOptions>().Configure(o =>
        {
            o.NodeId = name;
            o.Dispatcher.WorkerCount = 4;
            o.Dispatcher.Partitions = 16;
            dispatcher?.Invoke(o.Dispatcher);
        });
        services.AddSingleton<IConnectionMultiplexer>(multiplexer);
        var builder = new Builder(services);
        builder.AddRedis(o =>
        {
            o.KeyPrefix = keyPrefix;
            o.Dispatcher.PollInterval = TimeSpan.FromMilliseconds(250);
            redis?.Invoke(o.Dispatcher);
        });
        jobs(builder);

        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        var host = new DispatcherHost(name, multiplexer, provider);
        if (start)
        {
            await host.Dispatcher.StartAsync(CancellationToken.None);
        }

        return host;
    }

    public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? key = null)
        where TJob : notnull
        => Dispatcher.EnqueueAsync(job, key);

    public async ValueTask DisposeAsync()
    {
        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await Dispatcher.StopAsync(deadline.Token);
        }

        await _provider.DisposeAsync();
        await Multiplexer.DisposeAsync();
    }

    /// <summary>What <c>AddChatScale()</c> returns, for hosts built without the ASP.NET Core package.</summary>
    internal sealed class Builder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
