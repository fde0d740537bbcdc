namespace ChatScale.Samples.Chat.Api;

/// <summary>Body of <c>POST /api/conversations</c>.</summary>
/// <param name="Title">An optional title.</param>
/// <param name="Participants">The other members; the caller is always added.</param>
public sealed record CreateConversationRequest(string? Title, IReadOnlyList<string>? Participants);
