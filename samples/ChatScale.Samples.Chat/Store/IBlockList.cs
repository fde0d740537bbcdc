namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// Who blocked whom. A user someone blocked cannot create a conversation that includes them (the sample's
/// invitation rule, <see cref="Api.InvitationRule"/>). <see cref="InMemoryBlockList"/> is the embedded default;
/// <see cref="MongoBlockList"/> is used with MongoDB.
/// </summary>
public interface IBlockList
{
    /// <summary>Records that <paramref name="userId"/> blocks <paramref name="blockedUserId"/> (idempotent).</summary>
    /// <param name="userId">Who blocks.</param>
    /// <param name="blockedUserId">Who is blocked.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task BlockAsync(string userId, string blockedUserId, CancellationToken cancellationToken = default);

    /// <summary>Lifts a block (idempotent).</summary>
    /// <param name="userId">Who blocked.</param>
    /// <param name="blockedUserId">Who was blocked.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task UnblockAsync(string userId, string blockedUserId, CancellationToken cancellationToken = default);

    /// <summary>The users <paramref name="userId"/> blocks, in ordinal order.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<IReadOnlyList<string>> ListBlockedAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>Those of <paramref name="userIds"/> who block <paramref name="blockedUserId"/>, in one round-trip.</summary>
    /// <param name="userIds">The users to check.</param>
    /// <param name="blockedUserId">The user who may be blocked.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    Task<IReadOnlyList<string>> WhoBlocksAsync(IReadOnlyCollection<string> userIds, string blockedUserId, CancellationToken cancellationToken = default);
}
