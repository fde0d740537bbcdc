using System.Collections.Concurrent;

namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// The embedded default store: everything in process memory, lost on exit, private to one node. Fine for one node and
/// for tests; two nodes need a shared store (MongoDB).
/// </summary>
/// <remarks>
/// Each conversation's messages are appended under that conversation's lock, which takes the next sequence number and
/// stores the message in one step: numbers run 1, 2, 3, ... with no holes, and a reader never sees n+1 before n.
/// </remarks>
public sealed class InMemoryChatStore : IChatStore
{
    private readonly ConcurrentDictionary<string, ConversationLog> _conversations = new(StringComparer.Ordinal);

    // Ids are unique store-wide, as MongoDB's _id is in the messages collection.
    private readonly ConcurrentDictionary<string, ChatMessage> _messagesById = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public Task CreateConversationAsync(Conversation conversation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversation);
        if (!_conversations.TryAdd(conversation.Id, new ConversationLog(conversation)))
        {
            throw new InvalidOperationException($"A conversation with id {conversation.Id} already exists.");
        }

        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<Conversation?> GetConversationAsync(string conversationId, CancellationToken cancellationToken = default)
        => Task.FromResult(_conversations.GetValueOrDefault(conversationId)?.Conversation);

    /// <inheritdoc />
    public Task<IReadOnlyList<Conversation>> ListConversationsForAsync(string userId, string? before, int limit, CancellationToken cancellationToken = default)
    {
        if (before is not null && !StoreIds.IsValid(before))
        {
            return Task.FromResult<IReadOnlyList<Conversation>>([]);
        }

        IReadOnlyList<Conversation> result = _conversations.Values
            .Select(log => log.Conversation)
            .Where(c => c.HasParticipant(userId) && (before is null || string.CompareOrdinal(c.Id, before.ToLowerInvariant()) < 0))
            .OrderByDescending(c => c.Id, StringComparer.Ordinal)
            .Take(limit)
            .ToList();
        return Task.FromResult(result);
    }

    /// <inheritdoc />
    public Task<AppendResult> AppendMessageAsync(ChatMessage message, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_messagesById.TryGetValue(message.Id, out var existing))
        {
            return Task.FromResult(new AppendResult(existing, Created: false));
        }

        var log = _conversations.GetValueOrDefault(message.ConversationId)
            ?? throw new InvalidOperationException($"Conversation {message.ConversationId} does not exist.");
        lock (log.Gate)
        {
            var stored = message with { Seq = log.Messages.Count + 1 };

            // Checked again under the lock: a concurrent append of this id to another conversation may have won.
            if (!_messagesById.TryAdd(stored.Id, stored))
            {
                return Task.FromResult(new AppendResult(_messagesById[stored.Id], Created: false));
            }

            log.Messages.Add(stored);
            return Task.FromResult(new AppendResult(stored, Created: true));
        }
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<ChatMessage>> GetMessagesAsync(string conversationId, long? after, long? before, int limit, CancellationToken cancellationToken = default)
    {
        if (!_conversations.TryGetValue(conversationId, out var log))
        {
            return Task.FromResult<IReadOnlyList<ChatMessage>>([]);
        }

        lock (log.Gate)
        {
            // No holes: the message with seq n is at index n - 1, so a seq range is an index range.
            var start = (int)Math.Clamp(after ?? 0, 0, log.Messages.Count);
            var end = (int)Math.Clamp((before ?? long.MaxValue) - 1, start, log.Messages.Count);
            var count = Math.Max(0, Math.Min(limit, end - start));
            IReadOnlyList<ChatMessage> page = after is not null
                ? log.Messages.GetRange(start, count)
                : log.Messages.GetRange(end - count, count);
            return Task.FromResult(page);
        }
    }

    private sealed class ConversationLog(Conversation conversation)
    {
        public Lock Gate { get; } = new();

        public Conversation Conversation { get; } = conversation;

        /// <summary>In seq order; the message with seq n is at index n - 1.</summary>
        public List<ChatMessage> Messages { get; } = [];
    }
}
