namespace ChatScale.Redis.Internal;

/// <summary>
/// The Lua scripts behind <see cref="RedisStreamDispatcher"/>; each runs atomically. Time is the Redis server's clock, so
/// node clock skew cannot expire a live member. Every key they touch carries the dispatcher hash tag (see
/// <see cref="RedisKeyspace"/>).
/// </summary>
internal static class DispatcherScripts
{
    /// <summary>The consumer group every job stream is read through.</summary>
    public const string Group = "workers";

    private const string Now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """;

    /// <summary>
    /// KEYS: members. ARGV: instance id, TTL ms, leaving (1/0). Renews (or removes) this instance's membership, drops
    /// expired members and returns the live ones.
    /// </summary>
    public const string Heartbeat = Now + """

        if ARGV[3] == '1' then
          redis.call('ZREM', KEYS[1], ARGV[1])
        else
          redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
        end
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        return redis.call('ZRANGE', KEYS[1], 0, -1)
        """;

    /// <summary>KEYS: lease. ARGV: instance id, TTL ms. Takes a free lease or extends our own; 1 when we hold it.</summary>
    public const string AcquireLease = """
        local owner = redis.call('GET', KEYS[1])
        if owner == false then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return 1
        elseif owner == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return 1
        end
        return 0
        """;

    /// <summary>KEYS: lease. ARGV: instance id, TTL ms. Extends the lease only if we still hold it (compare-and-extend).</summary>
    public const string RenewLease = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return 1
        end
        return 0
        """;

    /// <summary>KEYS: lease. ARGV: instance id. Deletes the lease only if we hold it.</summary>
    public const string ReleaseLease = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """;

    /// <summary>
    /// KEYS: stream[, lease]. ARGV: group, entry id, instance id. Acks and deletes a finished job; with a lease, only
    /// while we still own the partition (0 otherwise: the new owner will run it again).
    /// </summary>
    public const string Complete = """
        if #KEYS > 1 and redis.call('GET', KEYS[2]) ~= ARGV[3] then
          return 0
        end
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        return 1
        """;

    /// <summary>
    /// KEYS: stream, dead[, lease]. ARGV: group, entry id, instance id, job id, type, key ('' = none), data, attempts,
    /// error, enqueued ms. Moves a job to the dead-letter stream (under the lease check, as <see cref="Complete"/>);
    /// idempotent, so a retry after a lost reply does not dead-letter the job twice.
    /// </summary>
    public const string DeadLetter = Now + """

        if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[3] then
          return 0
        end
        if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then
          return 1
        end
        if ARGV[6] == '' then
          redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'type', ARGV[5], 'data', ARGV[7], 'attempts', ARGV[8], 'error', ARGV[9], 'enq', ARGV[10], 'dead', now)
        else
          redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'type', ARGV[5], 'key', ARGV[6], 'data', ARGV[7], 'attempts', ARGV[8], 'error', ARGV[9], 'enq', ARGV[10], 'dead', now)
        end
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        return 1
        """;

    /// <summary>
    /// KEYS: dead, target stream. ARGV: dead-letter entry id. Moves one dead-lettered job back to a job stream with a
    /// fresh attempt count; 0 when it is no longer there (replayed or purged concurrently).
    /// </summary>
    public const string Replay = """
        local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
        if #found == 0 then
          return 0
        end
        local f = found[1][2]
        local out = {}
        for i = 1, #f, 2 do
          local k = f[i]
          if k == 'id' or k == 'type' or k == 'key' or k == 'data' or k == 'enq' then
            out[#out + 1] = k
            out[#out + 1] = f[i + 1]
          end
        end
        out[#out + 1] = 'attempt'
        out[#out + 1] = '0'
        redis.call('XADD', KEYS[2], '*', unpack(out))
        redis.call('XDEL', KEYS[1], ARGV[1])
        return 1
        """;

    /// <summary>KEYS: dead. Deletes the dead-letter stream; returns how many jobs it held.</summary>
    public const string Purge = """
        local n = redis.call('XLEN', KEYS[1])
        redis.call('DEL', KEYS[1])
        return n
        """;
}
