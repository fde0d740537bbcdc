namespace ChatScale.Redis.Internal;

/// <summary>
/// The Lua scripts behind <see cref="RedisStreamDispatcher"/>; each runs atomically, and each touches the keys of one
/// partition only (one hash slot, see <see cref="RedisKeyspace"/>). Time is the Redis server's clock, so node clock
/// skew cannot expire a live member. <b>Fencing:</b> every script that reads, acks, retries or dead-letters entries of
/// a partition first checks that the lease still holds the caller's exact value (<c>instance:token</c>) in the same
/// script, so a former owner (frozen, partitioned, or just late) can neither take new entries nor settle old ones.
/// </summary>
internal static class DispatcherScripts
{
    /// <summary>The consumer group every job stream is read through.</summary>
    public const string Group = "workers";

    /// <summary>What a fenced script returns when the caller's lease is gone.</summary>
    public const long LeaseLost = -1;

    private const string Now = """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        """;

    /// <summary>
    /// Acks and deletes the entries ARGV[first..] (KEYS[1]: stream, KEYS[2]: attempts, ARGV[2]: group), and the attempt
    /// records of the first <c>records</c> of them; sets <c>acked</c>.
    /// </summary>
    private const string AckEntries = """

        local ids = {}
        for i = first, #ARGV do
          ids[#ids + 1] = ARGV[i]
        end
        local acked = #ids
        if acked > 0 then
          redis.call('XACK', KEYS[1], ARGV[2], unpack(ids))
          redis.call('XDEL', KEYS[1], unpack(ids))
          if records > 0 then
            redis.call('HDEL', KEYS[2], unpack(ids, 1, records))
          end
        end
        """;

    /// <summary>
    /// <c>XREADGROUP ... &gt;</c> of up to <c>count</c> new entries of KEYS[1] (ARGV[2]: group, ARGV[3]: consumer) into
    /// <c>entries</c>; re-creates a vanished group (a Redis restart without persistence) instead of failing.
    /// </summary>
    private const string ReadEntries = """

        local entries = {}
        local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', count, 'STREAMS', KEYS[1], '>')
        if type(r) == 'table' and r.err then
          if not string.find(r.err, 'NOGROUP', 1, true) then
            return redis.error_reply(r.err)
          end
          redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[2], '0', 'MKSTREAM')
        elseif r then
          entries = r[1][2]
        end
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

    /// <summary>
    /// KEYS: lease, fence, stream. ARGV: instance id, TTL ms, group. Takes a free lease (or our own, left by an earlier
    /// worker of ours) under a new fencing token, and makes sure the consumer group exists. Returns the token, 0 when
    /// another instance holds the lease.
    /// </summary>
    public const string AcquireLease = """
        local held = redis.call('GET', KEYS[1])
        if held and string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then
          return 0
        end
        local token = redis.call('INCR', KEYS[2])
        redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
        local created = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[3], '0', 'MKSTREAM')
        return token
        """;

    /// <summary>KEYS: lease. ARGV: lease value, TTL ms. Extends the lease only if it still holds our value; 1 or 0.</summary>
    public const string RenewLease = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return 1
        end
        return 0
        """;

    /// <summary>KEYS: lease. ARGV: lease value. Deletes the lease only if it still holds our value.</summary>
    public const string ReleaseLease = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """;

    /// <summary>
    /// KEYS: stream[, lease]. ARGV: lease value ('' without a lease), group, consumer, count. A fenced, non-blocking
    /// <c>XREADGROUP ... &gt;</c>: new entries, or -1 when the lease is gone (then nothing was taken). Re-creates a
    /// vanished group (a Redis restart without persistence) instead of failing.
    /// </summary>
    public const string Read = """
        if #KEYS > 1 and redis.call('GET', KEYS[2]) ~= ARGV[1] then
          return -1
        end
        local count = ARGV[4]
        """ + ReadEntries + """

        return entries
        """;

    /// <summary>
    /// KEYS: stream, attempts[, lease]. ARGV: lease value, group, consumer, count, cursor, others only (1/0), min idle ms.
    /// Fenced recovery: claims (<c>XAUTOCLAIM</c>) entries pending under any consumer into ours, with their stored
    /// attempt records and the server time. With "others only", does nothing unless some other consumer holds entries (the cheap check
    /// an owner runs at any time). Returns {next cursor, entries, attempt records, now ms} or -1 when the lease is gone.
    /// </summary>
    public const string Claim = """
        if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[1] then
          return -1
        end
        if ARGV[6] == '1' then
          local s = redis.pcall('XPENDING', KEYS[1], ARGV[2])
          if type(s) ~= 'table' or s.err or not s[4] then
            return {'0-0', {}, {}}
          end
          local others = false
          for _, c in ipairs(s[4]) do
            if c[1] ~= ARGV[3] then
              others = true
            end
          end
          if not others then
            return {'0-0', {}, {}}
          end
        end
        local r = redis.pcall('XAUTOCLAIM', KEYS[1], ARGV[2], ARGV[3], ARGV[7], ARGV[5], 'COUNT', ARGV[4])
        if type(r) == 'table' and r.err then
          if string.find(r.err, 'NOGROUP', 1, true) then
            redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[2], '0', 'MKSTREAM')
            return {'0-0', {}, {}}
          end
          return redis.error_reply(r.err)
        end
        local ids = {}
        for i, e in ipairs(r[2]) do
          ids[i] = e[1]
        end
        local records = {}
        if #ids > 0 then
          records = redis.call('HMGET', KEYS[2], unpack(ids))
        end
        local t = redis.call('TIME')
        return {r[1], r[2], records, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
        """;

    /// <summary>
    /// KEYS: stream[, lease]. ARGV: lease value, group, consumer. Fenced and atomic consumer clean-up: deletes every
    /// other consumer of the group that holds no pending entry (one that still holds some is left for recovery).
    /// </summary>
    public const string ForgetIdleConsumers = """
        if #KEYS > 1 and redis.call('GET', KEYS[2]) ~= ARGV[1] then
          return -1
        end
        local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[2])
        if type(cs) ~= 'table' or cs.err then
          return 0
        end
        local n = 0
        for _, c in ipairs(cs) do
          local name, pending
          for i = 1, #c, 2 do
            if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
          end
          if name ~= ARGV[3] and pending == 0 then
            redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[2], name)
            n = n + 1
          end
        end
        return n
        """;

    /// <summary>
    /// KEYS: stream, attempts[, lease]. ARGV: lease value, group, n, entry ids... (the first n have an attempt record).
    /// Fenced batch ack: acks and deletes finished jobs (and their attempt records); the count, or -1 when the lease is
    /// gone (the next owner runs them again).
    /// </summary>
    public const string Complete = """
        if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[1] then
          return -1
        end
        local first, records = 4, tonumber(ARGV[3])
        """ + AckEntries + """

        return acked
        """;

    /// <summary>
    /// KEYS: stream, attempts, lease. ARGV: lease value, group, consumer, count, n, entry ids... (the first n have an
    /// attempt record). A partition's one round trip: the fenced batch ack of <see cref="Complete"/> and the read of
    /// <see cref="Read"/> in one script, so a job that finishes while more arrive costs one script, not two. Returns
    /// {acked count, new entries} (no read when count is 0), or -1 when the lease is gone (then nothing was acked or
    /// taken).
    /// </summary>
    public const string CompleteAndRead = """
        if redis.call('GET', KEYS[3]) ~= ARGV[1] then
          return -1
        end
        local first, records = 6, tonumber(ARGV[5])
        """ + AckEntries + """

        if ARGV[4] == '0' then
          return {acked, {}}
        end
        local count = ARGV[4]
        """ + ReadEntries + """

        return {acked, entries}
        """;

    /// <summary>
    /// KEYS: stream, attempts[, lease]. ARGV: lease value, entry id, attempts made, delay ms. Fenced: stores a failed
    /// job's attempt count and the server time of its next attempt with the entry, so any later owner continues the
    /// count and honours the backoff. 1, or -1 when the lease is gone.
    /// </summary>
    public const string Retry = Now + """

        if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[1] then
          return -1
        end
        redis.call('HSET', KEYS[2], ARGV[2], ARGV[3] .. ':' .. (now + tonumber(ARGV[4])))
        return 1
        """;

    /// <summary>
    /// KEYS: stream, attempts, dead[, lease]. ARGV: lease value, group, entry id, attempts, error. Fenced: moves a job to
    /// the dead-letter stream (its stored job field, the attempt count, the error and the time) and acks it; idempotent,
    /// so a retry after a lost reply does not dead-letter the job twice. 1, or -1 when the lease is gone.
    /// </summary>
    public const string DeadLetter = Now + """

        if #KEYS > 3 and redis.call('GET', KEYS[4]) ~= ARGV[1] then
          return -1
        end
        local found = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
        if #found > 0 then
          local f = found[1][2]
          local job = ''
          for i = 1, #f, 2 do
            if f[i] == 'j' then job = f[i + 1] end
          end
          redis.call('XADD', KEYS[3], '*', 'j', job, 'attempts', ARGV[4], 'error', ARGV[5], 'dead', now)
        end
        redis.call('XACK', KEYS[1], ARGV[2], ARGV[3])
        redis.call('XDEL', KEYS[1], ARGV[3])
        redis.call('HDEL', KEYS[2], ARGV[3])
        return 1
        """;

    /// <summary>
    /// KEYS: dead, target stream. ARGV: dead-letter entry id. Moves one dead-lettered job back to its job stream (the
    /// same slot) as a new entry, so with a fresh attempt count; 0 when it is no longer there.
    /// </summary>
    public const string Replay = """
        local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
        if #found == 0 then
          return 0
        end
        local f = found[1][2]
        for i = 1, #f, 2 do
          if f[i] == 'j' then
            redis.call('XADD', KEYS[2], '*', 'j', f[i + 1])
          end
        end
        redis.call('XDEL', KEYS[1], ARGV[1])
        return 1
        """;

    /// <summary>
    /// KEYS: stream. ARGV: group, consumer. Deletes the consumer only if it holds no pending entry, in one step (so an
    /// entry read meanwhile is never dropped from the pending list with it); 1 when deleted.
    /// </summary>
    public const string ForgetConsumerIfEmpty = """
        local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
        if #p == 0 then
          redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
          return 1
        end
        return 0
        """;

    /// <summary>KEYS: dead. Deletes a dead-letter stream; returns how many jobs it held.</summary>
    public const string Purge = """
        local n = redis.call('XLEN', KEYS[1])
        redis.call('DEL', KEYS[1])
        return n
        """;
}
