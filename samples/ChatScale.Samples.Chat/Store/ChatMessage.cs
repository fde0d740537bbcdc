namespace ChatScale.Samples.Chat.Store;

/// <summary>One saved chat message.</summary>
/// <param name="Id">An ObjectId-shaped id (24 lowercase hex digits): unique, and roughly time-ordered.</param>
/// <param name="ConversationId">The conversation it belongs to.</param>
/// <param name="Sender">The user who sent it.</param>
/// <param name="Text">The text.</param>
/// <param name="SentAt">When the server accepted it (millisecond precision, like MongoDB dates).</param>
public sealed record ChatMessage(string Id, string ConversationId, string Sender, string Text, DateTimeOffset SentAt);
