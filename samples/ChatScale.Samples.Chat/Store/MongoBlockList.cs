using System.Text.RegularExpressions;
using MongoDB.Bson;
using MongoDB.Bson.Serialization.Attributes;
using MongoDB.Driver;

namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// <see cref="IBlockList"/> in MongoDB: one document per block in the <c>blocks</c> collection, its <c>_id</c>
/// <c>"{user}/{blocked}"</c> (user names never contain '/'), so every check is a lookup on <c>_id</c>.
/// </summary>
public sealed class MongoBlockList : IBlockList
{
    private readonly IMongoCollection<BlockDocument> _blocks;

    /// <summary>Uses <paramref name="database"/>'s <c>blocks</c> collection.</summary>
    /// <param name="database">The database.</param>
    public MongoBlockList(IMongoDatabase database)
    {
        ArgumentNullException.ThrowIfNull(database);
        _blocks = database.GetCollection<BlockDocument>("blocks");
    }

    /// <inheritdoc />
    public Task BlockAsync(string userId, string blockedUserId, CancellationToken cancellationToken = default)
        => _blocks.ReplaceOneAsync(
            Builders<BlockDocument>.Filter.Eq(b => b.Id, Key(userId, blockedUserId)),
            new BlockDocument { Id = Key(userId, blockedUserId), User = userId, Blocked = blockedUserId },
            new ReplaceOptions { IsUpsert = true },
            cancellationToken);

    /// <inheritdoc />
    public Task UnblockAsync(string userId, string blockedUserId, CancellationToken cancellationToken = default)
        => _blocks.DeleteOneAsync(Builders<BlockDocument>.Filter.Eq(b => b.Id, Key(userId, blockedUserId)), cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<string>> ListBlockedAsync(string userId, CancellationToken cancellationToken = default)
    {
        var prefix = new BsonRegularExpression("^" + Regex.Escape(userId + "/"));
        var documents = await _blocks.Find(Builders<BlockDocument>.Filter.Regex(b => b.Id, prefix)).SortBy(b => b.Id).ToListAsync(cancellationToken);
        return documents.ConvertAll(d => d.Blocked);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<string>> WhoBlocksAsync(IReadOnlyCollection<string> userIds, string blockedUserId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        var documents = await _blocks.Find(Builders<BlockDocument>.Filter.In(b => b.Id, userIds.Select(u => Key(u, blockedUserId)))).ToListAsync(cancellationToken);
        return documents.ConvertAll(d => d.User);
    }

    private static string Key(string userId, string blockedUserId) => userId + "/" + blockedUserId;

    internal sealed class BlockDocument
    {
        [BsonId]
        public string Id { get; set; } = string.Empty;

        [BsonElement("user")]
        public string User { get; set; } = string.Empty;

        [BsonElement("blocked")]
        public string Blocked { get; set; } = string.Empty;
    }
}
