namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// The embedded default store: everything in process memory, lost on exit, private to one node. Fine for one node and
/// for tests; two nodes need a shared store (MongoDB).
/// </summary>
public sealed class InMemoryChatStore : IChatStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Conversation> _conversations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SortedList<string, ChatMessage>> _messages = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChatMessage> _messagesById = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public Task CreateConversationAsync(Conversation conversation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        lock (_gate)
        {
            if (!_conversations.TryAdd(conversation.Id, conversation))
            {
                throw new InvalidOperationException($"A conversation with id {conversation.Id} already exists.");
            }
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<Conversation?> GetConversationAsync(string conversationId, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            return Task.FromResult(_conversations.GetValueOrDefault(conversationId));
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<Conversation>> ListConversationsForAsync(string userId, int limit, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            IReadOnlyList<Conversation> result = _conversations.Values
                .Where(c => c.HasParticipant(userId))
                .OrderByDescending(c => c.Id, StringComparer.Ordinal)
                .Take(limit)
                .ToList();
            return Task.FromResult(result);
        }
    }

    /// <inheritdoc />
    public Task<AppendResult> AppendMessageAsync(ChatMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        lock (_gate)
        {
            // Ids are unique store-wide, as MongoDB's _id is in the messages collection.
            if (_messagesById.TryGetValue(message.Id, out var existing))
            {
                return Task.FromResult(new AppendResult(existing, Created: false));
            }

            if (!_messages.TryGetValue(message.ConversationId, out var list))
            {
                list = new SortedList<string, ChatMessage>(StringComparer.Ordinal);
                _messages.Add(message.ConversationId, list);
            }

            list.Add(message.Id, message);
            _messagesById.Add(message.Id, message);
            return Task.FromResult(new AppendResult(message, Created: true));
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<ChatMessage>> GetMessagesAsync(string conversationId, string? after, string? before, int limit, CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (!_messages.TryGetValue(conversationId, out var list))
            {
                return Task.FromResult<IReadOnlyList<ChatMessage>>([]);
            }

            // Lowercase hex ids of equal length: ordinal string order is ObjectId order.
            var inRange = list.Values.Where(m =>
                (after is null || string.CompareOrdinal(m.Id, after) > 0) &&
                (before is null || string.CompareOrdinal(m.Id, before) < 0));
            IReadOnlyList<ChatMessage> page = after is not null
                ? inRange.Take(limit).ToList()
                : inRange.TakeLast(limit).ToList();
            return Task.FromResult(page);
        }
    }
}
