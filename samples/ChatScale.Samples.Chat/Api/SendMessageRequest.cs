namespace ChatScale.Samples.Chat.Api;

/// <summary>Body of <c>POST /api/conversations/{id}/messages</c>.</summary>
/// <param name="Text">The message text.</param>
/// <param name="Id">
/// Optional client-chosen message id (an ObjectId made just before sending; its timestamp must be within 5 minutes of the
/// server's clock): resending with the same id after a timeout returns the saved message instead of posting it twice.
/// </param>
public sealed record SendMessageRequest(string? Text, string? Id);
