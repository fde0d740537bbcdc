using MongoDB.Bson;
using MongoDB.Bson.Serialization.Attributes;
using MongoDB.Driver;

namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// The MongoDB store (official MongoDB.Driver). Collections <c>conversations</c> (index on participants + _id, for
/// "my conversations") and <c>messages</c> (index on conversationId + _id, for history paging). Message ids are the
/// documents' ObjectId <c>_id</c>, so MongoDB's own <c>_id</c> uniqueness makes appends idempotent: no unique secondary
/// index, no transaction, no read-before-write.
/// </summary>
public sealed class MongoChatStore : IChatStore
{
    private readonly IMongoCollection<ConversationDocument> _conversations;
    private readonly IMongoCollection<MessageDocument> _messages;

    /// <summary>Uses <paramref name="database"/>; call <see cref="EnsureIndexesAsync"/> once at startup.</summary>
    /// <param name="database">The database.</param>
    public MongoChatStore(IMongoDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _conversations = database.GetCollection<ConversationDocument>("conversations");
        _messages = database.GetCollection<MessageDocument>("messages");
    }

    /// <summary>Creates the indexes (idempotent: creating an existing index is a no-op).</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task EnsureIndexesAsync(CancellationToken cancellationToken = default)
    {
        await _messages.Indexes.CreateOneAsync(
            new CreateIndexModel<MessageDocument>(
                Builders<MessageDocument>.IndexKeys.Ascending(m => m.ConversationId).Ascending(m => m.Id),
                new CreateIndexOptions { Name = "conversationId_1__id_1" }),
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
    public async Task<IReadOnlyList<Conversation>> ListConversationsForAsync(string userId, int limit, CancellationToken cancellationToken = default)
    {
        var documents = await _conversations
            .Find(Builders<ConversationDocument>.Filter.AnyEq(c => c.Participants, userId))
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
        try
        {
            await _messages.InsertOneAsync(document, cancellationToken: cancellationToken);
            return new AppendResult(message, Created: true);
        }
        catch (MongoWriteException ex) when (ex.WriteError?.Category == ServerErrorCategory.DuplicateKey)
        {
            // The only unique index is _id: this id was stored before (a retried send). Return what was stored.
            var existing = await _messages.Find(m => m.Id == document.Id).FirstOrDefaultAsync(cancellationToken)
                ?? throw new InvalidOperationException($"Message {message.Id} was reported as a duplicate but cannot be read.", ex);
            return new AppendResult(existing.ToMessage(), Created: false);
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ChatMessage>> GetMessagesAsync(string conversationId, string? after, string? before, int limit, CancellationToken cancellationToken = default)
    {
        if (!ObjectId.TryParse(conversationId, out var conversation))
        {
            return [];
        }

        var filter = Builders<MessageDocument>.Filter;
        var query = filter.Eq(m => m.ConversationId, conversation);
        if (after is not null)
        {
            query &= filter.Gt(m => m.Id, ObjectId.Parse(after));
        }

        if (before is not null)
        {
            query &= filter.Lt(m => m.Id, ObjectId.Parse(before));
        }

        var find = _messages.Find(query);
        if (after is not null)
        {
            var oldestFirst = await find.SortBy(m => m.Id).Limit(limit).ToListAsync(cancellationToken);
            return oldestFirst.ConvertAll(d => d.ToMessage());
        }

        // Scrolling back: the newest page below the bound, returned oldest first like every page.
        var newestFirst = await find.SortByDescending(m => m.Id).Limit(limit).ToListAsync(cancellationToken);
        newestFirst.Reverse();
        return newestFirst.ConvertAll(d => d.ToMessage());
    }

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

        public static MessageDocument From(ChatMessage m) => new()
        {
            Id = ObjectId.Parse(m.Id),
            ConversationId = ObjectId.Parse(m.ConversationId),
            Sender = m.Sender,
            Text = m.Text,
            SentAt = m.SentAt.UtcDateTime,
        };

        public ChatMessage ToMessage()
            => new(Id.ToString(), ConversationId.ToString(), Sender, Text, new DateTimeOffset(DateTime.SpecifyKind(SentAt, DateTimeKind.Utc)));
    }
}
