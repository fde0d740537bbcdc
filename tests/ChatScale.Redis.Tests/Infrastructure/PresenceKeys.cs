using ChatScale.Redis.Internal;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>Reads presence's keys the way the registry lays them out (<see cref="RedisKeyspace"/>), for assertions.</summary>
public static class PresenceKeys
{
    public static RedisKey User(string prefix, string userId) => new RedisKeyspace(prefix, sharded: false).User(userId);

    public static RedisKey Heartbeats(string prefix) => new RedisKeyspace(prefix, sharded: false).Heartbeats;

    /// <summary>Every presence key of <paramref name="prefix"/> except the heartbeats, on every primary.</summary>
    public static async Task<List<RedisKey>> AllAsync(IConnectionMultiplexer multiplexer, string prefix)
    {
        var keys = new List<RedisKey>();
        foreach (var server in multiplexer.GetServers())
        {
            if (server.IsReplica)
            {
                continue;
            }

            await foreach (var key in server.KeysAsync(pattern: "{" + prefix + ":pr:*"))
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    /// <summary>How many connections Redis holds in <paramref name="nodeId"/>'s index, over all buckets.</summary>
    public static async Task<long> NodeEntriesAsync(IConnectionMultiplexer multiplexer, string prefix, string nodeId)
    {
        var keyspace = new RedisKeyspace(prefix, sharded: false);
        var db = multiplexer.GetDatabase();
        var lengths = await Task.WhenAll(Enumerable.Range(0, PresenceBuckets.Count).Select(b => db.HashLengthAsync(keyspace.NodeIndex(b, nodeId))));
        return lengths.Sum();
    }

    /// <summary>Deletes every presence key of <paramref name="prefix"/> (heartbeats included): what a Redis restart without persistence does.</summary>
    public static async Task WipeAsync(IConnectionMultiplexer multiplexer, string prefix)
    {
        var db = multiplexer.GetDatabase();
        foreach (var key in await AllAsync(multiplexer, prefix))
        {
            await db.KeyDeleteAsync(key);
        }

        await db.KeyDeleteAsync(Heartbeats(prefix));
    }
}
