namespace ChatScale.Samples.Chat.Api;

/// <summary>A message posted to a public channel (live only, not stored).</summary>
/// <param name="Channel">The channel's name.</param>
/// <param name="Sender">Who posted it.</param>
/// <param name="Text">The text.</param>
/// <param name="SentAt">When the server accepted it.</param>
public sealed record ChannelPost(string Channel, string Sender, string Text, DateTimeOffset SentAt);
