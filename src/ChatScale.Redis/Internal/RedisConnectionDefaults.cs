using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>How ChatScale configures the Redis connection it creates itself (when none is registered in DI).</summary>
internal static class RedisConnectionDefaults
{
    /// <summary>
    /// Parses <paramref name="connectionString"/> and makes the connection start even while Redis is down (the
    /// listener retries) and fail commands at once while disconnected instead of queueing them: a publish during an
    /// outage should surface as a retryable error, not a late delivery.
    /// </summary>
    public static ConfigurationOptions Create(string connectionString)
    {
        var configuration = ConfigurationOptions.Parse(connectionString);
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        return configuration;
    }
}
