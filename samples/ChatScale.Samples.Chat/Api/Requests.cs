namespace ChatScale.Samples.Chat.Api;

/// <summary>Body of <c>POST /api/dev/token</c>.</summary>
/// <param name="User">The user name to sign in as.</param>
public sealed record TokenRequest(string? User);

/// <summary>Body of <c>POST /api/conversations</c>.</summary>
/// <param name="Title">An optional title.</param>
/// <param name="Participants">The other members; the caller is always added.</param>
public sealed record CreateConversationRequest(string? Title, IReadOnlyList<string>? Participants);

/// <summary>Body of <c>POST /api/conversations/{id}/messages</c>.</summary>
/// <param name="Text">The message text.</param>
/// <param name="Id">
/// Optional client-chosen message id (an ObjectId made just before sending; its timestamp must be within 5 minutes of the
/// server's clock): resending with the same id after a timeout returns the saved message instead of posting it twice.
/// </param>
public sealed record SendMessageRequest(string? Text, string? Id);

/// <summary>One member's presence.</summary>
/// <param name="User">The member.</param>
/// <param name="Online">Whether they have a live connection on any node.</param>
public sealed record MemberPresence(string User, bool Online);

/// <summary>A page of history.</summary>
/// <param name="Messages">Oldest first.</param>
public sealed record MessagePage(IReadOnlyList<Store.ChatMessage> Messages);
