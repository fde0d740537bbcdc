namespace ChatScale.Redis.Internal;

/// <summary>
/// The Lua scripts behind <see cref="RedisConnectionRegistry"/>. Each runs atomically on the server and touches the
/// keys of one presence bucket (one hash tag, so one cluster slot), or only the heartbeats key. Time is always the
/// Redis server's clock (<c>TIME</c>), never a node's, so clock skew between nodes cannot make a live node look dead.
/// StackExchange.Redis sends them with EVALSHA once known and re-sends the source after a server restart.
/// </summary>
/// <remarks>
/// A bucket's digest hash (<c>n</c>, <c>x</c>) is kept equal to the count and XOR of the first 32 bits of SHA-1 of the
/// connection ids in the node's index of that bucket; the node keeps the same digest of the connections it holds, so
/// one <c>HMGET</c> per bucket tells whether Redis and the node agree on the whole set (ghosts and losses alike).
/// </remarks>
internal static class PresenceScripts
{
    private const string Now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """;

    /// <summary>KEYS: user, node index, node digest (one bucket). ARGV: connectionId, nodeId, userId, digest of the id.</summary>
    public const string Register = """
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 1 then
          local x = tonumber(redis.call('HGET', KEYS[3], 'x') or '0')
          redis.call('HSET', KEYS[3], 'x', bit.bxor(x, tonumber(ARGV[4])))
          redis.call('HINCRBY', KEYS[3], 'n', 1)
        end
        return 1
        """;

    /// <summary>
    /// KEYS: user, node index, node digest (one bucket). ARGV: connectionId, nodeId, digest of the id. Removes the user's
    /// entry only if it is on that node. Idempotent.
    /// </summary>
    public const string Unregister = """
        if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
          redis.call('HDEL', KEYS[1], ARGV[1])
        end
        if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
          if redis.call('HINCRBY', KEYS[3], 'n', -1) <= 0 then
            redis.call('DEL', KEYS[3])
          else
            local x = tonumber(redis.call('HGET', KEYS[3], 'x') or '0')
            redis.call('HSET', KEYS[3], 'x', bit.bxor(x, tonumber(ARGV[3])))
          end
        end
        return 1
        """;

    /// <summary>
    /// KEYS: heartbeats. ARGV: nodeId to mark alive now, or an empty string to only read; optionally a nodeId that
    /// does not claim its users (its listener is not subscribed), recorded with score 0 if it has no heartbeat yet, so
    /// it reads dead and the sweep can still find and delete its entries once it is gone. Returns { now, { node1,
    /// score1, ... } }: the server's clock and every node's last heartbeat, from which each node knows liveness locally.
    /// </summary>
    public const string Heartbeat = Now + """

        if ARGV[1] ~= '' then
          redis.call('ZADD', KEYS[1], now, ARGV[1])
        elseif ARGV[2] and ARGV[2] ~= '' then
          redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[2])
        end
        return { now, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') }
        """;

    /// <summary>
    /// KEYS: node index, node digest (one bucket). ARGV: nodeId, the bucket's user key prefix, batch size. Deletes up to
    /// one batch of the node's connections in the bucket (a user's entry only if it is still on that node). Returns
    /// { removed user entries, remaining index entries }.
    /// </summary>
    public const string RemoveBucketBatch = """
        local entries = redis.call('HRANDFIELD', KEYS[1], tonumber(ARGV[3]), 'WITHVALUES')
        local removed = 0
        local x = tonumber(redis.call('HGET', KEYS[2], 'x') or '0')
        for i = 1, #entries, 2 do
          local userKey = ARGV[2] .. entries[i + 1]
          if redis.call('HGET', userKey, entries[i]) == ARGV[1] then
            redis.call('HDEL', userKey, entries[i])
            removed = removed + 1
          end
          redis.call('HDEL', KEYS[1], entries[i])
          x = bit.bxor(x, tonumber(string.sub(redis.sha1hex(entries[i]), 1, 8), 16))
        end
        local remaining = redis.call('HLEN', KEYS[1])
        if remaining == 0 then
          redis.call('DEL', KEYS[2])
        elseif #entries > 0 then
          redis.call('HSET', KEYS[2], 'n', remaining, 'x', x)
        end
        return { removed, remaining }
        """;

    /// <summary>
    /// KEYS: heartbeats. ARGV: nodeId, timeout in ms. Forgets the node's heartbeat if it is older than the timeout (it
    /// did not come back while its buckets were being cleared). Returns 1 if it was removed.
    /// </summary>
    public const string ForgetNode = Now + """

        local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if s and now - tonumber(s) > tonumber(ARGV[2]) then
          redis.call('ZREM', KEYS[1], ARGV[1])
          return 1
        end
        return 0
        """;

    /// <summary>
    /// KEYS: node index, node digest (one bucket). Recomputes the digest from the index, after a repair (so a digest
    /// that drifted for any reason converges). Returns { count, digest }.
    /// </summary>
    public const string RebuildDigest = """
        local fields = redis.call('HKEYS', KEYS[1])
        local x = 0
        for _, c in ipairs(fields) do
          x = bit.bxor(x, tonumber(string.sub(redis.sha1hex(c), 1, 8), 16))
        end
        redis.call('DEL', KEYS[2])
        if #fields > 0 then
          redis.call('HSET', KEYS[2], 'n', #fields, 'x', x)
        end
        return { #fields, x }
        """;
}
