namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// Conversations and messages. <see cref="InMemoryChatStore"/> is the embedded default; <see cref="MongoChatStore"/>
/// is used when <c>ConnectionStrings:Mongo</c> is set. Both pass the same contract tests.
/// </summary>
/// <remarks>
/// Ids are ObjectId-shaped (<see cref="StoreIds"/>). A malformed id is treated as unknown, never as an error, so a
/// client's garbage cannot turn into a 500. Messages are ordered by id.
/// </remarks>
public interface IChatStore
{
    /// <summary>Saves a new conversation.</summary>
    /// <param name="conversation">The conversation, with a fresh id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task CreateConversationAsync(Conversation conversation, CancellationToken cancellationToken = default);

    /// <summary>The conversation with <paramref name="conversationId"/>, or null.</summary>
    /// <param name="conversationId">The id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<Conversation?> GetConversationAsync(string conversationId, CancellationToken cancellationToken = default);

    /// <summary>The conversations <paramref name="userId"/> takes part in, newest first, at most <paramref name="limit"/>.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<IReadOnlyList<Conversation>> ListConversationsForAsync(string userId, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Saves <paramref name="message"/> unless a message with its id exists, in which case the stored one is returned
    /// with <see cref="AppendResult.Created"/> false: a retried send never duplicates a message.
    /// </summary>
    /// <param name="message">The message.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<AppendResult> AppendMessageAsync(ChatMessage message, CancellationToken cancellationToken = default);

    /// <summary>
    /// A page of a conversation's messages in ascending id order: those with an id greater than
    /// <paramref name="after"/> and less than <paramref name="before"/> (either may be null). With <paramref name="after"/>
    /// the page is the oldest <paramref name="limit"/> such messages (catching up); otherwise the newest ones (scrolling
    /// back).
    /// </summary>
    /// <param name="conversationId">The conversation.</param>
    /// <param name="after">Exclusive lower bound, or null.</param>
    /// <param name="before">Exclusive upper bound, or null.</param>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<IReadOnlyList<ChatMessage>> GetMessagesAsync(string conversationId, string? after, string? before, int limit, CancellationToken cancellationToken = default);
}
