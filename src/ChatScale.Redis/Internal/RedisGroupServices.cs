using ChatScale.Groups;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace ChatScale.Redis.Internal;

/// <summary>Registers Redis groups; called by <c>AddRedis</c> after the presence registry is registered.</summary>
internal static class RedisGroupServices
{
    public static void Add(IServiceCollection services)
    {
        services.TryAddSingleton<GroupNode>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, GroupNode>(static provider => provider.GetRequiredService<GroupNode>()));
        services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(static provider =>
            new GroupAwareConnectionRegistry(provider.GetRequiredService<RedisConnectionRegistry>(), provider.GetRequiredService<GroupNode>())));
        services.Replace(ServiceDescriptor.Singleton<IGroupManager>(static provider =>
            new RedisGroupManager(
                provider.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>(),
                provider.GetRequiredService<RedisConnectionRegistry>(),
                provider.GetRequiredService<GroupNode>(),
                provider.GetService<Microsoft.Extensions.Logging.ILoggerFactory>(),
                provider.GetService<System.Diagnostics.Metrics.IMeterFactory>())));
    }
}
