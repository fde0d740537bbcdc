namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>Tests that share one redis-server; each isolates itself with a unique key prefix.</summary>
[CollectionDefinition(Name)]
public sealed class SharedRedis : ICollectionFixture<RedisFixture>
{
    public const string Name = "shared redis";
}
