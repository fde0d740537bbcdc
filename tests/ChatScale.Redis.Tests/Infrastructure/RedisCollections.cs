using ChatScale.Testing;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>Tests that share one standalone Redis server.</summary>
[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "Redis";
}

/// <summary>Tests that share one local 3-node Redis Cluster.</summary>
[CollectionDefinition(Name)]
public sealed class RedisClusterCollection : ICollectionFixture<RedisClusterFixture>
{
    public const string Name = "RedisCluster";
}
