using ChatScale.Connections;
using ChatScale.InMemory;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class DependencyInjectionTests(RedisFixture redis)
{
    [Fact]
    public async Task AddRedis_AfterAddChatScale_ReplacesTheInMemoryServices_AndAddsTheHostedServices()
    {
        await using var multiplexer = await redis.ConnectAsync();
        var services = ChatScaleDefaults();
        services.AddSingleton<IConnectionMultiplexer>(multiplexer);

        new Builder(services).AddRedis();
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });

        Assert.IsType<RedisMessageBroadcaster>(provider.GetRequiredService<IMessageBroadcaster>());
        // Presence is RedisConnectionRegistry, seen through the wrapper that tells groups about local connects.
        Assert.IsType<ChatScale.Redis.Internal.GroupAwareConnectionRegistry>(provider.GetRequiredService<IConnectionRegistry>());
        Assert.NotNull(provider.GetRequiredService<RedisConnectionRegistry>());
        Assert.IsType<ChatScale.Redis.Internal.RedisGroupManager>(provider.GetRequiredService<ChatScale.Groups.IGroupManager>());
        Assert.Same(multiplexer, provider.GetRequiredService<IConnectionMultiplexer>());
        Assert.Single(provider.GetServices<IMessageBroadcaster>());
        Assert.Single(provider.GetServices<IConnectionRegistry>());
        var hosted = provider.GetServices<IHostedService>().Select(h => h.GetType().Name).Order(StringComparer.Ordinal);
        Assert.Equal(["GroupNode", "PresenceSweeper", "RedisBackplaneListener"], hosted);
        provider.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public async Task AddRedis_CalledTwice_RegistersEachServiceOnce()
    {
        await using var multiplexer = await redis.ConnectAsync();
        var services = ChatScaleDefaults();
        services.AddSingleton<IConnectionMultiplexer>(multiplexer);

        new Builder(services).AddRedis().AddRedis(o => o.KeyPrefix = "second");
        await using var provider = services.BuildServiceProvider();

        Assert.Equal(3, provider.GetServices<IHostedService>().Count());
        Assert.Single(provider.GetServices<IConnectionMultiplexer>());
        Assert.Equal("second", provider.GetRequiredService<IOptions<ChatScaleRedisOptions>>().Value.KeyPrefix);
    }

    [Fact]
    public async Task AddRedis_WithoutAMultiplexer_BindsTheChatScaleRedisSection_AndConnectsOnce()
    {
        var services = ChatScaleDefaults();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ChatScale:Redis:ConnectionString"] = redis.ConnectionString,
            ["ChatScale:Redis:KeyPrefix"] = "from-config",
            ["ChatScale:Redis:RoutingMode"] = "Broadcast",
            ["ChatScale:Redis:SweepInterval"] = "00:00:07",
            ["ChatScale:Redis:UseShardedPubSub"] = "false",
        }).Build());

        new Builder(services).AddRedis(o => o.SweepInterval = TimeSpan.FromSeconds(9)); // code runs after binding
        await using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IStartupValidator>().Validate();

        var options = provider.GetRequiredService<IOptions<ChatScaleRedisOptions>>().Value;
        Assert.Equal("from-config", options.KeyPrefix);
        Assert.Equal(RedisRoutingMode.Broadcast, options.RoutingMode);
        Assert.Equal(TimeSpan.FromSeconds(9), options.SweepInterval);
        var multiplexer = provider.GetRequiredService<IConnectionMultiplexer>();
        Assert.Same(multiplexer, provider.GetRequiredService<IConnectionMultiplexer>());
        await Eventually.TrueAsync(() => multiplexer.IsConnected, "the created multiplexer to connect");
    }

    [Fact]
    public async Task TheConnectionAddRedisOpened_IsClosedOnceTheHostHasStopped_OneTheAppRegisteredIsLeftOpen()
    {
        var services = ChatScaleDefaults();
        new Builder(services).AddRedis(o => o.ConnectionString = redis.ConnectionString);
        await using var provider = services.BuildServiceProvider();
        var owned = provider.GetRequiredService<IConnectionMultiplexer>();
        var closer = Assert.Single(provider.GetServices<IHostedService>().OfType<IHostedLifecycleService>(), h => h.GetType().Name == "OwnedConnectionCloser");
        await Eventually.TrueAsync(() => owned.IsConnected, "the created multiplexer to connect");
        await closer.StoppedAsync(CancellationToken.None);
        Assert.False(owned.IsConnected);

        await using var apps = await redis.ConnectAsync();
        var withAppConnection = ChatScaleDefaults();
        withAppConnection.AddSingleton<IConnectionMultiplexer>(apps);
        new Builder(withAppConnection).AddRedis();
        await using var appProvider = withAppConnection.BuildServiceProvider();
        Assert.DoesNotContain(appProvider.GetServices<IHostedService>(), h => h.GetType().Name == "OwnedConnectionCloser");
        Assert.True(apps.IsConnected);
    }

    [Theory]
    [InlineData("my app", "ChatScale:Redis:KeyPrefix")]
    [InlineData("a{b}", "ChatScale:Redis:KeyPrefix")]
    [InlineData("a:b", "ChatScale:Redis:KeyPrefix")]
    [InlineData("", "ChatScale:Redis:KeyPrefix")]
    public void InvalidKeyPrefix_FailsAtStartup_NamingTheOption(string prefix, string option)
    {
        var failure = StartupFailure(o =>
        {
            o.ConnectionString = "localhost:1";
            o.KeyPrefix = prefix;
        });

        Assert.Contains(option, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NonPositiveSweepInterval_AndUnknownRoutingMode_FailAtStartup_NamingTheOptions()
    {
        var failure = StartupFailure(o =>
        {
            o.ConnectionString = "localhost:1";
            o.SweepInterval = TimeSpan.Zero;
            o.RoutingMode = (RedisRoutingMode)7;
        });

        Assert.Contains("ChatScale:Redis:SweepInterval", failure.Message, StringComparison.Ordinal);
        Assert.Contains("ChatScale:Redis:RoutingMode", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoConnectionString_AndNoMultiplexer_FailsAtStartup_NamingTheOption()
    {
        var failure = StartupFailure(_ => { });

        Assert.Contains("ChatScale:Redis:ConnectionString", failure.Message, StringComparison.Ordinal);
    }

    private static OptionsValidationException StartupFailure(Action<ChatScaleRedisOptions> configure)
    {
        var services = ChatScaleDefaults();
        new Builder(services).AddRedis(configure);
        using var provider = services.BuildServiceProvider();
        return Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
    }

    // What AddChatScale() (the AspNetCore package) registers before AddRedis() runs.
    private static ServiceCollection ChatScaleDefaults()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddMetrics();
        services.AddOptions<ChatScaleOptions>().ValidateOnStart();
        services.AddSingleton<LocalConnections>();
        services.AddSingleton<IMessageBroadcaster, InMemoryMessageBroadcaster>();
        services.AddSingleton<IConnectionRegistry, InMemoryConnectionRegistry>();
        return services;
    }

    private sealed class Builder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
