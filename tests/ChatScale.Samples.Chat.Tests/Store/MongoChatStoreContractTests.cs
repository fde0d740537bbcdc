using ChatScale.Samples.Chat.Store;
using ChatScale.Samples.Chat.Tests.Infrastructure;
using MongoDB.Bson;
using MongoDB.Driver;

namespace ChatScale.Samples.Chat.Tests.Store;

/// <summary>
/// The contract on MongoDB: CongoDB by default, the real server named by CHATSCALE_TEST_MONGO when set. The store
/// relies only on what both implement faithfully (ObjectId _id, _id uniqueness, compound indexes, sort/limit, $gt/$lt on
/// ObjectIds, array equality): no unique secondary index, transaction or string ordering.
/// </summary>
[Collection(MongoCollection.Name)]
public sealed class MongoChatStoreContractTests(MongoFixture mongo) : ChatStoreContract
{
    private IMongoDatabase? _database;

    protected override async Task<IChatStore> CreateStoreAsync()
    {
        _database = mongo.NewDatabase();
        var store = new MongoChatStore(_database);
        await store.EnsureIndexesAsync();
        return store;
    }

    public override async Task DisposeAsync()
    {
        if (_database is not null)
        {
            await mongo.Client.DropDatabaseAsync(_database.DatabaseNamespace.DatabaseName);
        }
    }

    [Fact]
    public async Task EnsureIndexes_creates_the_history_index_on_conversationId_and_id_and_is_repeatable()
    {
        await ((MongoChatStore)Store).EnsureIndexesAsync();

        var indexes = await (await _database!.GetCollection<BsonDocument>("messages").Indexes.ListAsync()).ToListAsync();
        var history = Assert.Single(indexes, i => i["name"] == "conversationId_1__id_1");
        Assert.Equal(new BsonDocument { { "conversationId", 1 }, { "_id", 1 } }, history["key"].AsBsonDocument);
    }
}
