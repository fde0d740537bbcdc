using System.Collections.Concurrent;

namespace ChatScale.Samples.Chat.Store;

/// <summary>The embedded <see cref="IBlockList"/>: one process's memory.</summary>
public sealed class InMemoryBlockList : IBlockList
{
    private readonly ConcurrentDictionary<(string User, string Blocked), bool> _blocks = new();

    /// <inheritdoc />
    public Task BlockAsync(string userId, string blockedUserId, CancellationToken cancellationToken = default)
    {
        _blocks[(userId, blockedUserId)] = true;
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task UnblockAsync(string userId, string blockedUserId, CancellationToken cancellationToken = default)
    {
        _blocks.TryRemove((userId, blockedUserId), out _);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListBlockedAsync(string userId, CancellationToken cancellationToken = default)
    {
        IReadOnlyList<string> blocked = [.. _blocks.Keys.Where(k => k.User == userId).Select(k => k.Blocked).Order(StringComparer.Ordinal)];
        return Task.FromResult(blocked);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> WhoBlocksAsync(IReadOnlyCollection<string> userIds, string blockedUserId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        IReadOnlyList<string> blockers = [.. userIds.Where(u => _blocks.ContainsKey((u, blockedUserId)))];
        return Task.FromResult(blockers);
    }
}
