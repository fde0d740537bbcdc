using ChatScale;
using ChatScale.AspNetCore;
using ChatScale.AspNetCore.Internal;
using ChatScale.Connections;
using ChatScale.InMemory;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds ChatScale to an ASP.NET Core application.</summary>
public static class ChatScaleServiceCollectionExtensions
{
    /// <summary>
    /// Adds ChatScale: options bound from the <c>ChatScale</c> configuration section (and the endpoint's from
    /// <c>ChatScale:Endpoint</c>), then <paramref name="configure"/>, validated when the host starts; the local
    /// fan-out engine; in-memory presence, broadcaster and background dispatcher (a single node needs nothing else); the presence heartbeat,
    /// graceful shutdown and dispatcher hosted services; and, when the host left it unset, Kestrel's
    /// <c>Limits.MaxConcurrentConnections</c> from the process's open-file limit (see
    /// <see cref="ChatScaleEndpointOptions.MaxConnections"/>). Map the endpoint with <c>app.MapChatScale("/ws")</c>.
    /// </summary>
    /// <remarks>
    /// Every service is added with TryAdd semantics, so calling this twice is harmless, services registered before
    /// it win, and packages such as ChatScale.Redis replace the in-memory ones when their <c>AddRedis(...)</c> is
    /// called on the returned builder. Configure endpoint options with
    /// <c>services.Configure&lt;ChatScaleEndpointOptions&gt;(...)</c> or the configuration section.
    /// </remarks>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Adjusts the options after configuration binding.</param>
    /// <returns>A builder to add ChatScale features to.</returns>
    /// <example>
    /// <code>
    /// builder.Services.AddChatScale(o => o.NodeId = "web-1").AddHealthChecks();
    /// var app = builder.Build();
    /// app.MapChatScale("/ws").RequireAuthorization();
    /// </code>
    /// </example>
    public static IChatScaleBuilder AddChatScale(this IServiceCollection services, Action<ChatScaleOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);

        services.AddOptions<ChatScaleOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<ChatScaleOptions>, ChatScaleOptionsBinder>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ChatScaleOptions>, ChatScaleOptionsValidator>());
        if (configure is not null)
        {
            services.Configure(configure);
        }

        services.AddOptions<ChatScaleEndpointOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IConfigureOptions<ChatScaleEndpointOptions>, ChatScaleEndpointOptionsBinder>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ChatScaleEndpointOptions>, ChatScaleEndpointOptionsValidator>());

        services.TryAddSingleton<LocalConnections>();
        services.TryAddSingleton<IMessageBroadcaster, InMemoryMessageBroadcaster>();
        services.TryAddSingleton<ChatScale.Groups.IGroupManager, InMemoryGroupManager>();
        services.TryAddSingleton<IConnectionRegistry, InMemoryConnectionRegistry>();
        services.TryAddSingleton<IBackgroundDispatcher, InMemoryBackgroundDispatcher>();
        services.TryAddSingleton<IUserIdResolver, DefaultUserIdResolver>();

        services.TryAddSingleton<ChatScaleNodeState>();
        services.TryAddSingleton<AspNetCoreMetrics>();
        services.TryAddSingleton<ConnectionAdmission>();
        services.TryAddSingleton<ChatScaleEndpoint>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<KestrelServerOptions>, KestrelConnectionLimits>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ChatScaleNodeService>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, BackgroundDispatcherService>());

        return new ChatScaleBuilder(services);
    }
}
