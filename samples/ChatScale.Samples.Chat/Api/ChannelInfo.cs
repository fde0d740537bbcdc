namespace ChatScale.Samples.Chat.Api;

/// <summary>Answer of <c>GET /api/channels/{name}</c>.</summary>
/// <param name="Name">The channel.</param>
/// <param name="Members">How many users joined it.</param>
/// <param name="Online">How many of them are connected now, on any node.</param>
/// <param name="Joined">Whether the caller is a member.</param>
public sealed record ChannelInfo(string Name, long Members, long Online, bool Joined);
