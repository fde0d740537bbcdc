namespace ChatScale.Samples.Chat.Api;

/// <summary>A page of history.</summary>
/// <param name="Messages">Oldest first.</param>
public sealed record MessagePage(IReadOnlyList<Store.ChatMessage> Messages);
