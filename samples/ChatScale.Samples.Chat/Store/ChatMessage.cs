namespace ChatScale.Samples.Chat.Store;

/// <summary>One saved chat message.</summary>
/// <param name="Id">An ObjectId-shaped id (24 lowercase hex digits): unique store-wide; the idempotency key of a send.</param>
/// <param name="ConversationId">The conversation it belongs to.</param>
/// <param name="Sender">The user who sent it.</param>
/// <param name="Text">The text.</param>
/// <param name="SentAt">When the server accepted it (millisecond precision, like MongoDB dates).</param>
/// <param name="Seq">
/// Its position in the conversation (1, 2, 3, ...), assigned by the store when it is appended; 0 on a message not yet
/// stored. History is ordered and paged by it. See <see cref="IChatStore.AppendMessageAsync"/> for when a number can
/// be skipped.
/// </param>
public sealed record ChatMessage(string Id, string ConversationId, string Sender, string Text, DateTimeOffset SentAt, long Seq = 0);
