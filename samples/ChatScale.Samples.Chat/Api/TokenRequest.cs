namespace ChatScale.Samples.Chat.Api;

/// <summary>Body of <c>POST /api/dev/token</c>.</summary>
/// <param name="User">The user name to sign in as.</param>
public sealed record TokenRequest(string? User);
