namespace ChatScale.Samples.Chat.Store;

/// <summary>A conversation and the users who may read and post in it.</summary>
/// <param name="Id">An ObjectId-shaped id (24 lowercase hex digits).</param>
/// <param name="Title">A display title, possibly empty.</param>
/// <param name="Participants">The members, distinct, in the order given at creation.</param>
/// <param name="CreatedAt">When it was created (millisecond precision, like MongoDB dates).</param>
public sealed record Conversation(string Id, string Title, IReadOnlyList<string> Participants, DateTimeOffset CreatedAt)
{
    /// <summary>Whether <paramref name="userId"/> is a participant.</summary>
    public bool HasParticipant(string userId) => Participants.Contains(userId, StringComparer.Ordinal);
}
