using MongoDB.Bson;
using MongoDB.Bson.Serialization.Attributes;
using MongoDB.Driver;

namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// The MongoDB store (official MongoDB.Driver). Collections <c>conversations</c> (index on participants + _id, for
/// "my conversations"; each document also holds <c>lastSeq</c>, the conversation's message counter) and
/// <c>messages</c> (unique index on conversationId + seq, for history paging). Message ids are the documents' ObjectId
/// <c>_id</c>, so MongoDB's own <c>_id</c> uniqueness makes appends idempotent.
/// </summary>
/// <remarks>
/// <para>An append takes the next sequence number with one atomic <c>$inc</c> on the conversation document
/// (<c>FindOneAndUpdate</c>, returning the new value), then inserts the message with it: no transaction, and two nodes
/// appending at once always get distinct numbers. The price of two writes without a transaction is spelled out on
/// <see cref="IChatStore.AppendMessageAsync"/>: n+1 can be visible a moment before n, and a number can stay unused.</para>
/// <para>Idempotency rests on <c>_id</c>, not on the unique {conversationId, seq} index: a retried send is found by
/// its <c>_id</c> before a number is taken, and a concurrent duplicate insert fails on <c>_id</c>. That holds on
/// every server; the seq index only guards against a counter behind the stored messages (e.g. a restored backup)
/// and is not enforced by CongoDB, the in-memory server the tests run on (see shared/MONGODB.md).</para>
/// </remarks>
public sealed class MongoChatStore : IChatStore
{
    /// <summary>The counter field on conversation documents: the last sequence number given out.</summary>
    private const string LastSeqField = "lastSeq";

    /// <summary>The history index's name.</summary>
    private const string HistoryIndexName = "conversationId_1_seq_1";

    private readonly IMongoCollection<ConversationDocument> _conversations;
    private readonly IMongoCollection<BsonDocument> _counters;
    private readonly IMongoCollection<MessageDocument> _messages;

    /// <summary>Uses <paramref name="database"/>; call <see cref="EnsureIndexesAsync"/> once at startup.</summary>
    /// <param name="database">The database.</param>
    public MongoChatStore(IMongoDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _conversations = database.GetCollection<ConversationDocument>("conversations");
        _counters = database.GetCollection<BsonDocument>("conversations");
        _messages = database.GetCollection<MessageDocument>("messages");
    }

    /// <summary>Creates the indexes (idempotent: creating an existing index is a no-op).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task EnsureIndexesAsync(CancellationToken cancellationToken = default)
    {
        // Unique: two messages of one conversation never share a number. Partial (only seq > 0), so a database holding
        // messages written before sequence numbers existed can still build it; history queries always say seq > after
        // (after >= 0), which implies the filter, so the planner can use it.
        await _messages.Indexes.CreateOneAsync(
            new CreateIndexModel<MessageDocument>(
                Builders<MessageDocument>.IndexKeys.Ascending(m => m.ConversationId).Ascending(m => m.Seq),
                new CreateIndexOptions<MessageDocument>
                {
                    Name = HistoryIndexName,
                    Unique = true,
                    PartialFilterExpression = Builders<MessageDocument>.Filter.Gt(m => m.Seq, 0L),
                }),
            cancellationToken: cancellationToken);
        await _conversations.Indexes.CreateOneAsync(
            new CreateIndexModel<ConversationDocument>(
                Builders<ConversationDocument>.IndexKeys.Ascending(c => c.Participants).Descending(c => c.Id),
                new CreateIndexOptions { Name = "participants_1__id_-1" }),
            cancellationToken: cancellationToken);
    }

    /// <inheritdoc />
    public Task CreateConversationAsync(Conversation conversation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        return _conversations.InsertOneAsync(ConversationDocument.From(conversation), cancellationToken: cancellationToken);
    }

    /// <inheritdoc />
    public async Task<Conversation?> GetConversationAsync(string conversationId, CancellationToken cancellationToken = default)
    {
        if (!ObjectId.TryParse(conversationId, out var id))
        {
            return null;
        }

        var document = await _conversations.Find(c => c.Id == id).FirstOrDefaultAsync(cancellationToken);
        return document?.ToConversation();
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<Conversation>> ListConversationsForAsync(string userId, string? before, int limit, CancellationToken cancellationToken = default)
    {
        if (before is not null && !StoreIds.IsValid(before))
        {
            return [];
        }

        var filter = Builders<ConversationDocument>.Filter.AnyEq(c => c.Participants, userId);
        if (before is not null)
        {
            filter &= Builders<ConversationDocument>.Filter.Lt(c => c.Id, ObjectId.Parse(before));
        }

        var documents = await _conversations
            .Find(filter)
            .SortByDescending(c => c.Id)
            .Limit(limit)
            .ToListAsync(cancellationToken);
        return documents.ConvertAll(d => d.ToConversation());
    }

    /// <inheritdoc />
    public async Task<AppendResult> AppendMessageAsync(ChatMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var document = MessageDocument.From(message);

        // 1. A retried send (the common duplicate: the client timed out after the first one was saved) is answered
        //    from the stored message, before a number is taken, so it keeps its seq and leaves no hole. A point read
        //    on _id costs far less than the holes it saves.
        var existing = await FindMessageAsync(document.Id, cancellationToken);
        if (existing is not null)
        {
            return new AppendResult(existing, Created: false);
        }

        // 2. The next number: an atomic $inc on the conversation document, so concurrent appends on any nodes get
        //    distinct, increasing numbers. The increment is an Int32 ($inc by an int): CongoDB corrupts Int64 fields
        //    of documents it updates, while an Int32 counter survives updates on both servers, and real MongoDB's
        //    $inc promotes it to Int64 should it ever overflow. It is read back as a long either way.
        var counter = await _counters.FindOneAndUpdateAsync(
            Builders<BsonDocument>.Filter.Eq("_id", document.ConversationId),
            Builders<BsonDocument>.Update.Inc(LastSeqField, 1),
            new FindOneAndUpdateOptions<BsonDocument>
            {
                ReturnDocument = ReturnDocument.After,
                Projection = Builders<BsonDocument>.Projection.Include(LastSeqField),
            },
            cancellationToken)
            ?? throw new InvalidOperationException($"Conversation {message.ConversationId} does not exist.");
        document.Seq = counter[LastSeqField].ToInt64();

        // 3. The message with its number. _id uniqueness (enforced everywhere, unlike the seq index on CongoDB) is
        //    what keeps an append idempotent when a concurrent append of the same id wins between 1 and 3.
        try
        {
            await _messages.InsertOneAsync(document, cancellationToken: cancellationToken);
            return new AppendResult(document.ToMessage(), Created: true);
        }
        catch (MongoWriteException ex) when (ex.WriteError?.Category == ServerErrorCategory.DuplicateKey)
        {
            // The same id was stored by a concurrent retry: return it. The number taken in 2 stays unused, a hole
            // that readers refetch across and find nothing in (see IChatStore.AppendMessageAsync).
            existing = await FindMessageAsync(document.Id, cancellationToken);
            return existing is not null
                ? new AppendResult(existing, Created: false)
                : throw new InvalidOperationException(
                    $"Seq {document.Seq} of conversation {message.ConversationId} is already taken: its lastSeq counter is behind its messages.", ex);
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ChatMessage>> GetMessagesAsync(string conversationId, long? after, long? before, int limit, CancellationToken cancellationToken = default)
    {
        if (!ObjectId.TryParse(conversationId, out var conversation))
        {
            return [];
        }

        // Always a range on seq (> 0 at least): served by the {conversationId, seq} index, and it leaves out messages
        // written before sequence numbers existed.
        var filter = Builders<MessageDocument>.Filter;
        var query = filter.Eq(m => m.ConversationId, conversation) & filter.Gt(m => m.Seq, after ?? 0);
        if (before is not null)
        {
            query &= filter.Lt(m => m.Seq, before.Value);
        }

        var find = _messages.Find(query);
        if (after is not null)
        {
            var oldestFirst = await find.SortBy(m => m.Seq).Limit(limit).ToListAsync(cancellationToken);
            return oldestFirst.ConvertAll(d => d.ToMessage());
        }

        // Scrolling back: the newest page below the bound, returned oldest first like every page.
        var newestFirst = await find.SortByDescending(m => m.Seq).Limit(limit).ToListAsync(cancellationToken);
        newestFirst.Reverse();
        return newestFirst.ConvertAll(d => d.ToMessage());
    }

    private async Task<ChatMessage?> FindMessageAsync(ObjectId id, CancellationToken cancellationToken)
        => (await _messages.Find(m => m.Id == id).FirstOrDefaultAsync(cancellationToken))?.ToMessage();

    internal sealed class ConversationDocument
    {
        [BsonId]
        public ObjectId Id { get; set; }

        [BsonElement("title")]
        public string Title { get; set; } = string.Empty;

        [BsonElement("participants")]
        public List<string> Participants { get; set; } = [];

        [BsonElement("createdAt")]
        public DateTime CreatedAt { get; set; }

        /// <summary>
        /// The message counter: written only by <c>$inc</c> (never by an insert, hence ignored while 0), so it stays
        /// the Int32 the increment creates. The document must hold no Int64 field: CongoDB corrupts those on update.
        /// </summary>
        [BsonElement(LastSeqField)]
        [BsonIgnoreIfDefault]
        public long LastSeq { get; set; }

        public static ConversationDocument From(Conversation c) => new()
        {
            Id = ObjectId.Parse(c.Id),
            Title = c.Title,
            Participants = [.. c.Participants],
            CreatedAt = c.CreatedAt.UtcDateTime,
        };

        public Conversation ToConversation()
            => new(Id.ToString(), Title, Participants, new DateTimeOffset(DateTime.SpecifyKind(CreatedAt, DateTimeKind.Utc)));
    }

    internal sealed class MessageDocument
    {
        [BsonId]
        public ObjectId Id { get; set; }

        [BsonElement("conversationId")]
        public ObjectId ConversationId { get; set; }

        [BsonElement("sender")]
        public string Sender { get; set; } = string.Empty;

        [BsonElement("text")]
        public string Text { get; set; } = string.Empty;

        [BsonElement("sentAt")]
        public DateTime SentAt { get; set; }

        /// <summary>An Int64; safe on CongoDB because message documents are inserted, never updated.</summary>
        [BsonElement("seq")]
        public long Seq { get; set; }

        public static MessageDocument From(ChatMessage m) => new()
        {
            Id = ObjectId.Parse(m.Id),
            ConversationId = ObjectId.Parse(m.ConversationId),
            Sender = m.Sender,
            Text = m.Text,
            SentAt = m.SentAt.UtcDateTime,
            Seq = m.Seq,
        };

        public ChatMessage ToMessage()
            => new(Id.ToString(), ConversationId.ToString(), Sender, Text, new DateTimeOffset(DateTime.SpecifyKind(SentAt, DateTimeKind.Utc)), Seq);
    }
}
