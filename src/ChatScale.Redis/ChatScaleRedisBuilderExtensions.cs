using ChatScale;
using ChatScale.Connections;
using ChatScale.Redis;
using ChatScale.Redis.Internal;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Switches ChatScale's backplane and presence to Redis.</summary>
public static class ChatScaleRedisBuilderExtensions
{
    /// <summary>
    /// Uses Redis for <see cref="IMessageBroadcaster"/> (pub/sub backplane), <see cref="IConnectionRegistry"/>
    /// (presence) and <see cref="IBackgroundDispatcher"/> (<see cref="RedisStreamDispatcher"/>), and adds the hosted services that listen to the backplane and sweep dead nodes' presence.
    /// </summary>
    /// <remarks>
    /// <para>Options bind from the <c>ChatScale:Redis</c> configuration section when an <see cref="IConfiguration"/> is
    /// registered, then <paramref name="configure"/> runs; they are validated when the host starts.</para>
    /// <para>One <see cref="IConnectionMultiplexer"/> is shared by the whole process: an existing registration is reused
    /// (register it before calling this); otherwise one is created from
    /// <see cref="ChatScaleRedisOptions.ConnectionString"/>, configured to fail fast while disconnected so a publish
    /// during an outage throws <see cref="BackplaneUnavailableException"/> at once instead of waiting.</para>
    /// </remarks>
    /// <param name="builder">The builder returned by <c>AddChatScale()</c>.</param>
    /// <param name="configure">Sets options in code, after configuration binding.</param>
    /// <returns>The builder.</returns>
    /// <example>
    /// <code>
    /// builder.Services.AddChatScale()
    ///     .AddRedis(o =&gt;
    ///     {
    ///         o.ConnectionString = "localhost:6379";
    ///         o.KeyPrefix = "myapp";
    ///     });
    /// </code>
    /// </example>
    public static IChatScaleBuilder AddRedis(this IChatScaleBuilder builder, Action<ChatScaleRedisOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;

        // A multiplexer registered by the application is reused; only ours needs a connection string.
        var ownsMultiplexer = !services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer) && !ReferenceEquals(d.ImplementationFactory, CreateMultiplexer));
        var redisOptions = services.AddOptions<ChatScaleRedisOptions>();
        redisOptions.Configure<IServiceProvider>(static (options, provider) =>
            provider.GetService<IConfiguration>()?.GetSection(ChatScaleRedisOptions.SectionName).Bind(options));
        if (configure is not null)
        {
            redisOptions.Configure(configure);
        }

        redisOptions.ValidateOnStart();
        services.RemoveAll<IValidateOptions<ChatScaleRedisOptions>>();
        services.AddSingleton<IValidateOptions<ChatScaleRedisOptions>>(new ChatScaleRedisOptionsValidator(ownsMultiplexer));

        // AddChatScale() registers these; registering them here too (TryAdd) lets AddRedis stand on its own.
        services.AddOptions<ChatScaleOptions>();
        services.TryAddSingleton<LocalConnections>();
        services.TryAddSingleton<BackplaneReadiness>();

        services.TryAddSingleton<IConnectionMultiplexer>(CreateMultiplexer);
        services.TryAddSingleton<OwnedRedisConnection>();
        if (ownsMultiplexer)
        {
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, OwnedConnectionCloser>());
        }

        services.TryAddSingleton<RedisConnectionRegistry>();
        services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(static provider => provider.GetRequiredService<RedisConnectionRegistry>()));
        services.Replace(ServiceDescriptor.Singleton<IMessageBroadcaster, RedisMessageBroadcaster>());

        // Durable, ordered jobs on Redis Streams; the host starts it like the in-memory one (it is an IHostedService).
        services.TryAddSingleton<RedisStreamDispatcher>();
        services.Replace(ServiceDescriptor.Singleton<IBackgroundDispatcher>(static provider => provider.GetRequiredService<RedisStreamDispatcher>()));

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisBackplaneListener>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PresenceSweeper>());
        RedisGroupServices.Add(services);
        return builder;
    }

    private static readonly Func<IServiceProvider, IConnectionMultiplexer> CreateMultiplexer = static provider =>
    {
        var options = provider.GetRequiredService<IOptions<ChatScaleRedisOptions>>().Value;
        var configuration = RedisConnectionDefaults.Create(options.ConnectionString ?? string.Empty);
        configuration.ClientName ??= "chatscale-" + provider.GetRequiredService<IOptions<ChatScaleOptions>>().Value.NodeId;
        var multiplexer = ConnectionMultiplexer.Connect(configuration);
        provider.GetRequiredService<OwnedRedisConnection>().Multiplexer = multiplexer; // closed when the host has stopped
        return multiplexer;
    };
}
