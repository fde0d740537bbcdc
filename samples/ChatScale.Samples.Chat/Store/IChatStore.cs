namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// Conversations and messages. <see cref="InMemoryChatStore"/> is the embedded default; <see cref="MongoChatStore"/>
/// is used when <c>ConnectionStrings:Mongo</c> is set. Both pass the same contract tests.
/// </summary>
/// <remarks>
/// Ids are ObjectId-shaped (<see cref="StoreIds"/>). A malformed id is treated as unknown, never as an error, so a
/// client's garbage cannot turn into a 500. Messages are ordered by <see cref="ChatMessage.Seq"/>, a per-conversation
/// sequence number the store assigns, never by id: ids are made by whichever node accepts a message, so two nodes (or
/// skewed clocks) can make ids that sort against the order messages were saved.
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

    /// <summary>
    /// The conversations <paramref name="userId"/> takes part in, newest first (by id), at most <paramref name="limit"/>,
    /// only those older than <paramref name="before"/> when given: pass the last id of a page to get the next one.
    /// </summary>
    /// <param name="userId">The user.</param>
    /// <param name="before">A conversation id (need not exist) the page starts after, or null for the newest; a malformed id lists nothing.</param>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<IReadOnlyList<Conversation>> ListConversationsForAsync(string userId, string? before, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// Saves <paramref name="message"/> with the conversation's next sequence number, unless a message with its id
    /// exists, in which case the stored one (with its original <see cref="ChatMessage.Seq"/>) is returned with
    /// <see cref="AppendResult.Created"/> false: a retried send never duplicates a message nor takes a second number.
    /// </summary>
    /// <remarks>
    /// <para>Sequence numbers are unique and increasing per conversation; <see cref="ChatMessage.Seq"/> of the argument
    /// is ignored.</para>
    /// <para>A store without multi-document transactions (MongoDB here) takes the number and inserts the message in two
    /// writes, so a reader may see number n+1 a moment before n, and a number can stay unused for good (the node died
    /// between the two writes, or two retries of one id raced and one lost). Readers therefore treat a missing number
    /// as "fetch again", never as "skip": a later fetch returns it once saved; a number still missing then is a hole
    /// with nothing behind it. <see cref="InMemoryChatStore"/> never leaves holes.</para>
    /// <para>Throws <see cref="InvalidOperationException"/> when the conversation does not exist.</para>
    /// </remarks>
    Task<AppendResult> AppendMessageAsync(ChatMessage message, CancellationToken cancellationToken = default);

    /// <summary>
    /// A page of a conversation's messages in ascending <see cref="ChatMessage.Seq"/> order: those with a sequence
    /// number greater than <paramref name="after"/> and less than <paramref name="before"/> (either may be null). With
    /// <paramref name="after"/> the page is the oldest <paramref name="limit"/> such messages (catching up); otherwise
    /// the newest ones (scrolling back).
    /// </summary>
    /// <param name="conversationId">The conversation.</param>
    /// <param name="after">Exclusive lower bound on <see cref="ChatMessage.Seq"/> (0: from the first message), or null.</param>
    /// <param name="before">Exclusive upper bound on <see cref="ChatMessage.Seq"/>, or null.</param>
    /// <param name="limit">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<IReadOnlyList<ChatMessage>> GetMessagesAsync(string conversationId, long? after, long? before, int limit, CancellationToken cancellationToken = default);
}
