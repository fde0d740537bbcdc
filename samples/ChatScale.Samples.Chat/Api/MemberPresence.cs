namespace ChatScale.Samples.Chat.Api;

/// <summary>One member's presence.</summary>
/// <param name="User">The member.</param>
/// <param name="Online">Whether they have a live connection on any node.</param>
public sealed record MemberPresence(string User, bool Online);
