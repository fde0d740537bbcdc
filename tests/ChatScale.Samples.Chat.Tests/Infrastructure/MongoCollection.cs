namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>Tests sharing one MongoDB (CongoDB or CHATSCALE_TEST_MONGO).</summary>
[CollectionDefinition(Name)]
public sealed class MongoCollection : ICollectionFixture<MongoFixture>
{
    public const string Name = "mongo";
}
