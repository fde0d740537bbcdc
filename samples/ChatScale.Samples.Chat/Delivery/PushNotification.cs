namespace ChatScale.Samples.Chat.Delivery;

/// <summary>A notification for a participant who was offline when a message was published.</summary>
/// <param name="UserId">The recipient.</param>
/// <param name="ConversationId">The conversation.</param>
/// <param name="MessageId">The message; with <paramref name="UserId"/>, the notification's identity.</param>
/// <param name="Sender">Who sent the message.</param>
/// <param name="Preview">The start of the text.</param>
public sealed record PushNotification(string UserId, string ConversationId, string MessageId, string Sender, string Preview);
