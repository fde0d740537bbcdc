namespace ChatScale.Redis.Internal;

/// <summary>
/// The Lua scripts behind <see cref="RedisConnectionRegistry"/>. Each runs atomically on the server. Time is always
/// the Redis server's clock (<c>TIME</c>), never a node's, so clock skew between nodes cannot make a live node look
/// dead. StackExchange.Redis sends them with EVALSHA once known and re-sends the source after a server restart.
/// Every key they touch shares the presence hash tag (see <see cref="RedisKeyspace"/>), so they also run on a cluster.
/// </summary>
internal static class PresenceScripts
{
    private const string Now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """;

    /// <summary>KEYS: user, node, heartbeats. ARGV: connectionId, nodeId, userId. Also heartbeats the node.</summary>
    public const string Register = Now + """

        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
        redis.call('ZADD', KEYS[3], now, ARGV[2])
        return now
        """;

    /// <summary>KEYS: user, node. ARGV: connectionId, nodeId. Removes the connection only if it is on that node.</summary>
    public const string Unregister = """
        if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
          redis.call('HDEL', KEYS[1], ARGV[1])
        end
        redis.call('HDEL', KEYS[2], ARGV[1])
        return 1
        """;

    /// <summary>
    /// KEYS: heartbeats, node. ARGV: nodeId. Returns how many connections Redis holds for the node, so the node can
    /// tell when its presence was lost (a Redis restart without persistence, or a sweep while it was cut off).
    /// </summary>
    public const string Heartbeat = Now + """

        redis.call('ZADD', KEYS[1], now, ARGV[1])
        return redis.call('HLEN', KEYS[2])
        """;

    /// <summary>
    /// KEYS: heartbeats, user1..userN. ARGV: timeout in ms. Returns, per user, the distinct live nodes hosting it
    /// (an empty list means offline). A node is live when its heartbeat is at most the timeout old.
    /// </summary>
    public const string Locate = Now + """

        local timeout = tonumber(ARGV[1])
        local alive = {}
        local result = {}
        for i = 2, #KEYS do
          local nodes = {}
          local seen = {}
          local values = redis.call('HVALS', KEYS[i])
          for _, n in ipairs(values) do
            if not seen[n] then
              seen[n] = true
              local a = alive[n]
              if a == nil then
                local s = redis.call('ZSCORE', KEYS[1], n)
                a = (s ~= false) and (now - tonumber(s) <= timeout)
                alive[n] = a
              end
              if a then nodes[#nodes + 1] = n end
            end
          end
          result[#result + 1] = nodes
        end
        return result
        """;

    /// <summary>KEYS: heartbeats, user. ARGV: timeout in ms. Returns how many of the user's connections are on live nodes.</summary>
    public const string Count = Now + """

        local timeout = tonumber(ARGV[1])
        local alive = {}
        local count = 0
        for _, n in ipairs(redis.call('HVALS', KEYS[2])) do
          local a = alive[n]
          if a == nil then
            local s = redis.call('ZSCORE', KEYS[1], n)
            a = (s ~= false) and (now - tonumber(s) <= timeout)
            alive[n] = a
          end
          if a then count = count + 1 end
        end
        return count
        """;

    /// <summary>
    /// KEYS: heartbeats, node. ARGV: nodeId, user key prefix, batch size. Graceful removal of a node: its heartbeat is
    /// set to 0 at once (so every entry of it reads offline immediately, and a sweep finishes the job should this node
    /// die half-way), then up to one batch of its connections is deleted; when none remain the node's key and heartbeat
    /// go. Returns how many connections remain.
    /// </summary>
    public const string RemoveNodeBatch = """
        redis.call('ZADD', KEYS[1], 0, ARGV[1])
        local entries = redis.call('HRANDFIELD', KEYS[2], tonumber(ARGV[3]), 'WITHVALUES')
        for i = 1, #entries, 2 do
          local userKey = ARGV[2] .. entries[i + 1]
          if redis.call('HGET', userKey, entries[i]) == ARGV[1] then
            redis.call('HDEL', userKey, entries[i])
          end
          redis.call('HDEL', KEYS[2], entries[i])
        end
        local remaining = redis.call('HLEN', KEYS[2])
        if remaining == 0 then
          redis.call('DEL', KEYS[2])
          redis.call('ZREM', KEYS[1], ARGV[1])
        end
        return remaining
        """;

    /// <summary>
    /// KEYS: heartbeats. ARGV: timeout in ms, node key prefix, user key prefix, batch size. Finds one node whose
    /// heartbeat is older than the timeout and deletes up to one batch of its connections; when none remain, its key
    /// and heartbeat go. Returns { nodeId, removed, remaining }, or an empty list when no node is dead.
    /// The node key is derived here rather than passed in KEYS because the dead node is only known inside the script;
    /// it shares the heartbeats key's hash tag, so it is in the same cluster slot.
    /// </summary>
    public const string SweepBatch = Now + """

        local cutoff = now - tonumber(ARGV[1])
        local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'LIMIT', 0, 1)
        if #dead == 0 then return {} end
        local node = dead[1]
        local nodeKey = ARGV[2] .. node
        local entries = redis.call('HRANDFIELD', nodeKey, tonumber(ARGV[4]), 'WITHVALUES')
        local removed = 0
        for i = 1, #entries, 2 do
          local userKey = ARGV[3] .. entries[i + 1]
          if redis.call('HGET', userKey, entries[i]) == node then
            redis.call('HDEL', userKey, entries[i])
            removed = removed + 1
          end
          redis.call('HDEL', nodeKey, entries[i])
        end
        local remaining = redis.call('HLEN', nodeKey)
        if remaining == 0 then
          redis.call('DEL', nodeKey)
          redis.call('ZREM', KEYS[1], node)
        end
        return { node, removed, remaining }
        """;
}
