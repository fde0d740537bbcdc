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
    public async Task EnsureIndexes_creates_the_history_index_on_conversationId_and_seq_and_is_repeatable()
    {
        await ((MongoChatStore)Store).EnsureIndexesAsync();

        var indexes = await (await _database!.GetCollection<BsonDocument>("messages").Indexes.ListAsync()).ToListAsync();
        var history = Assert.Single(indexes, i => i["name"] == "conversationId_1_seq_1");
        Assert.Equal(new BsonDocument { { "conversationId", 1 }, { "seq", 1 } }, history["key"].AsBsonDocument);
        if (!mongo.IsCongoDb)
        {
            Assert.True(history["unique"].ToBoolean());
        }
    }

    [Fact]
    public async Task The_seq_index_rejects_a_second_message_with_a_taken_seq_on_real_MongoDB_and_CongoDB_is_known_not_to()
    {
        var conversation = await NewConversationAsync();
        var stored = (await Store.AppendMessageAsync(new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "one", Start))).Message;
        var clash = new BsonDocument
        {
            { "_id", ObjectId.GenerateNewId() }, { "conversationId", ObjectId.Parse(conversation.Id) }, { "sender", "mallory" },
            { "text", "same seq" }, { "sentAt", Start.UtcDateTime }, { "seq", stored.Seq },
        };
        var messages = _database!.GetCollection<BsonDocument>("messages");

        if (mongo.IsCongoDb)
        {
            // CongoDB does not enforce unique secondary indexes (shared/MONGODB.md). Appends never depend on it: their
            // idempotency rests on _id, tested in the contract. Should this start failing, CongoDB enforces them now:
            // drop this branch.
            await messages.InsertOneAsync(clash);
        }
        else
        {
            var error = await Assert.ThrowsAsync<MongoWriteException>(() => messages.InsertOneAsync(clash));
            Assert.Equal(ServerErrorCategory.DuplicateKey, error.WriteError.Category);
        }
    }

    [Fact]
    public async Task On_real_MongoDB_an_append_whose_counter_is_behind_the_stored_messages_fails_instead_of_duplicating_a_seq()
    {
        var conversation = await NewConversationAsync();
        await Store.AppendMessageAsync(new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "one", Start));
        await _database!.GetCollection<BsonDocument>("conversations").UpdateOneAsync(
            new BsonDocument("_id", ObjectId.Parse(conversation.Id)), new BsonDocument("$set", new BsonDocument("lastSeq", 0)));
        var append = Store.AppendMessageAsync(new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "two", Start));

        if (mongo.IsCongoDb)
        {
            // No unique seq index on CongoDB (see above): the duplicate number goes through there.
            Assert.Equal(1, (await append).Message.Seq);
        }
        else
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => append);
            Assert.Contains("counter is behind", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Appends_keep_the_counter_an_Int32_and_the_conversation_readable()
    {
        var conversation = await NewConversationAsync();
        for (var i = 0; i < 3; i++)
        {
            await Store.AppendMessageAsync(new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", $"m{i}", Start));
        }

        // CongoDB rewrites Int64 fields of updated documents into sub-documents; an Int32 counter survives there and
        // on MongoDB, and the conversation still deserializes.
        var raw = await _database!.GetCollection<BsonDocument>("conversations").Find(new BsonDocument("_id", ObjectId.Parse(conversation.Id))).SingleAsync();
        Assert.Equal(new BsonInt32(3), raw["lastSeq"]);
        Assert.Equal(conversation, await Store.GetConversationAsync(conversation.Id), ConversationComparer);
        Assert.Equal(4, (await Store.AppendMessageAsync(new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "m3", Start))).Message.Seq);
    }

    [Fact]
    public async Task Messages_stored_before_sequence_numbers_existed_do_not_break_history_or_the_index()
    {
        var conversation = await NewConversationAsync();
        await _database!.GetCollection<BsonDocument>("messages").InsertManyAsync(Enumerable.Range(0, 2).Select(i => new BsonDocument
        {
            { "_id", ObjectId.GenerateNewId() }, { "conversationId", ObjectId.Parse(conversation.Id) }, { "sender", "alice" },
            { "text", $"legacy {i}" }, { "sentAt", Start.UtcDateTime },
        }));
        await ((MongoChatStore)Store).EnsureIndexesAsync();

        var stored = (await Store.AppendMessageAsync(new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "new", Start))).Message;

        Assert.Equal([stored], await Store.GetMessagesAsync(conversation.Id, null, null, 10));
        Assert.Equal([stored], await Store.GetMessagesAsync(conversation.Id, 0, 10, 10));
    }

    private static readonly DateTimeOffset Start = StoreIds.Truncate(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    private static readonly IEqualityComparer<Conversation?> ConversationComparer = EqualityComparer<Conversation?>.Create(
        (a, b) => a is not null && b is not null && (a.Id, a.Title, a.CreatedAt) == (b.Id, b.Title, b.CreatedAt) && a.Participants.SequenceEqual(b.Participants));

    private async Task<Conversation> NewConversationAsync()
    {
        var conversation = new Conversation(StoreIds.NewId(), "t", ["alice", "bob"], Start);
        await Store.CreateConversationAsync(conversation);
        return conversation;
    }
}
