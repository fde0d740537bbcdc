namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>Tests that share one Redis (see <see cref="RedisFixture"/>: CHATSCALE_TEST_REDIS, a local redis-server, or Testcontainers).</summary>
[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "Redis";
}

/// <summary>Tests that share one local 3-master Redis Cluster.</summary>
[CollectionDefinition(Name)]
public sealed class RedisClusterCollection : ICollectionFixture<RedisClusterFixture>
{
    public const string Name = "RedisCluster";
}
