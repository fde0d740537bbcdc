namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>One real redis-server and one MongoDB (CongoDB or CHATSCALE_TEST_MONGO) shared by the multi-node tests.</summary>
[CollectionDefinition(Name)]
public sealed class ServersCollection : ICollectionFixture<RedisFixture>, ICollectionFixture<MongoFixture>
{
    public const string Name = "redis+mongo";
}
