using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>The Redis connection <c>AddRedis</c> opened itself (null when the application registered its own).</summary>
internal sealed class OwnedRedisConnection
{
    public IConnectionMultiplexer? Multiplexer { get; set; }
}
