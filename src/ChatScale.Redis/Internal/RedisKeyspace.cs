using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Every Redis key and channel name ChatScale uses, built here and nowhere else.
/// </summary>
/// <remarks>
/// <para><b>Layout</b> (prefix <c>P</c>):</para>
/// <code>
/// {P:pr:b:k}:u:&lt;userId&gt;        hash   connectionId -&gt; nodeId     (who is where; b = bucket of the user)
/// {P:pr:b:k}:n:&lt;nodeId&gt;        hash   connectionId -&gt; userId     (a node's connections in bucket b)
/// {P:pr:b:k}:d:&lt;nodeId&gt;        hash   n = count, x = XOR digest of those connection ids
/// {P}:presence:heartbeats       zset   nodeId, score = Redis server time in unix ms (0: a node that has never claimed
///                                       its users, so it reads dead and a sweep still finds its entries)
/// P:bp:node:&lt;nodeId&gt;            channel: envelopes for one node
/// P:bp:all                      channel: envelopes for every node
/// {P:dispatch:&lt;i&gt;}:jobs        stream: keyed jobs of partition i (consumer group "workers")
/// {P:dispatch:&lt;i&gt;}:lease       string: "instanceId:fencingToken" of the owner of partition i (PX = lease TTL)
/// {P:dispatch:&lt;i&gt;}:fence       string: the partition's last fencing token (INCR, never expires)
/// {P:dispatch:&lt;i&gt;}:attempts    hash   entry id -&gt; "attempts:next attempt (server unix ms)" of a retrying job
/// {P:dispatch:&lt;i&gt;}:dead        stream: dead-lettered jobs of partition i
/// {P:dispatch:shared}:jobs|attempts|dead   the same for unkeyed jobs (no lease: any instance reads them)
/// {P:dispatch}:members          zset   dispatcher instance id, score = membership expiry (server unix ms)
/// P:dispatch:wake:&lt;instance&gt;   channel: "jobs were added to these partitions" for the owner of those partitions
/// P:dispatch:wake               channel: the same, from enqueuers that do not know the owners yet
/// </code>
/// <para><b>Dispatcher keys</b> carry one hash tag per partition (<c>{P:dispatch:i}</c>), so on a Redis Cluster the
/// partitions spread over the shards; the fenced scripts (read, ack, retry, dead-letter under the lease check) and
/// replay only ever touch the keys of one partition, which share its slot.</para>
/// <para><b>Presence is spread over the cluster's slots.</b> A user belongs to one of 128 buckets (FNV-1a of the id);
/// each bucket has its own hash tag, chosen so bucket <c>b</c> sits in slot range <c>[128b, 128b + 128)</c>
/// (<see cref="PresenceBuckets"/>), so masters owning even slot ranges hold even shares. Every atomic step stays in
/// one slot: register and unregister touch the user's hash and the node's index and digest of the user's bucket;
/// the sweep and graceful removal run one script per bucket. Costs: a register or unregister is one script (3 keys,
/// one slot); a lookup of N users is N pipelined <c>HVALS</c>, each sent to the shard owning the user's bucket, no
/// script; node liveness is read once per refresh interval (one <c>ZRANGE</c> of the heartbeats key, the one key
/// every node touches, O(nodes) and only on heartbeat and refresh), never per lookup. A heartbeat also reads each
/// used bucket's digest (one <c>HMGET</c> per bucket, pipelined); only a bucket whose digest differs from the node's
/// own set is read in full and repaired. A sweep or graceful removal of a node costs one script per bucket.</para>
/// <para>Pub/sub channels are not hash-tagged, so with sharded pub/sub the node channels spread over the shards too.</para>
/// <para><b>Hostile ids.</b> Keys and channels are binary-safe byte strings. User and node ids are appended verbatim
/// as strict UTF-8 after a fixed prefix, so any id (newlines, braces, unicode, very long) maps to exactly one key and
/// cannot reach another's: the hash tag is the first <c>{...}</c> of the key, which is always ours, and the prefix
/// (letters, digits, <c>-_.</c>) cannot contain <c>:</c>, so <c>P:</c> never collides with another prefix. Strings
/// that are not valid UTF-16 (unpaired surrogates) are rejected rather than replaced, so two ids never share a key.</para>
/// </remarks>
internal sealed class RedisKeyspace
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private const int MaxCachedNodeChannels = 4096;

    private readonly ConcurrentDictionary<string, RedisChannel> _nodeChannels = new(StringComparer.Ordinal);
    private readonly byte[][] _userKeyPrefixes;
    private readonly byte[][] _nodeKeyPrefixes;
    private readonly byte[][] _digestKeyPrefixes;
    private readonly byte[] _nodeChannelPrefix;
    private readonly bool _sharded;

    public RedisKeyspace(string keyPrefix, bool sharded)
    {
        ArgumentException.ThrowIfNullOrEmpty(keyPrefix);
        _sharded = sharded;
        var tags = PresenceBuckets.Tags(keyPrefix);
        _userKeyPrefixes = new byte[tags.Length][];
        _nodeKeyPrefixes = new byte[tags.Length][];
        _digestKeyPrefixes = new byte[tags.Length][];
        for (var b = 0; b < tags.Length; b++)
        {
            _userKeyPrefixes[b] = Encoding.UTF8.GetBytes(tags[b] + ":u:");
            _nodeKeyPrefixes[b] = Encoding.UTF8.GetBytes(tags[b] + ":n:");
            _digestKeyPrefixes[b] = Encoding.UTF8.GetBytes(tags[b] + ":d:");
        }

        Heartbeats = (RedisKey)("{" + keyPrefix + "}:presence:heartbeats");
        _nodeChannelPrefix = Encoding.UTF8.GetBytes(keyPrefix + ":bp:node:");
        AllNodesChannel = Channel(Encoding.UTF8.GetBytes(keyPrefix + ":bp:all"));

        _dispatchPrefix = keyPrefix + ":dispatch";
        SharedJobs = (RedisKey)("{" + _dispatchPrefix + ":shared}:jobs");
        SharedAttempts = (RedisKey)("{" + _dispatchPrefix + ":shared}:attempts");
        SharedDeadLetters = (RedisKey)("{" + _dispatchPrefix + ":shared}:dead");
        DispatcherMembers = (RedisKey)("{" + _dispatchPrefix + "}:members");
        DispatcherWakeChannel = Channel(Encoding.UTF8.GetBytes(_dispatchPrefix + ":wake"));

        _groupMembersPrefix = Encoding.UTF8.GetBytes("{" + keyPrefix + ":g:");
        _userGroupsPrefix = Encoding.UTF8.GetBytes("{" + keyPrefix + ":gu:");
        _groupChannelPrefix = Encoding.UTF8.GetBytes(keyPrefix + ":g:ch:");
        _groupAckPrefix = Encoding.UTF8.GetBytes(keyPrefix + ":g:ack:");
        GroupChangesChannel = Channel(Encoding.UTF8.GetBytes(keyPrefix + ":g:changes"));
    }

    // Groups: {P:g:<group>}:members (set of users) and {P:gu:<user>}:groups (set of groups), each in its own slot;
    // P:g:ch:<group> carries a group's envelopes, P:g:changes joins and leaves, P:g:ack:<node> their acknowledgements.
    private readonly byte[] _groupMembersPrefix;
    private readonly byte[] _userGroupsPrefix;
    private readonly byte[] _groupChannelPrefix;
    private readonly byte[] _groupAckPrefix;

    /// <summary>The set of one group's members, in the group's own slot.</summary>
    public RedisKey GroupMembers(string groupId) => Concat(_groupMembersPrefix, groupId, "}:members"u8, nameof(groupId));

    /// <summary>The set of the groups one user belongs to, in the user's own slot.</summary>
    public RedisKey UserGroups(string userId) => Concat(_userGroupsPrefix, userId, "}:groups"u8, nameof(userId));

    /// <summary>The channel of one group's envelopes: subscribed only by nodes hosting at least one member.</summary>
    public RedisChannel GroupChannel(string groupId) => Channel(Concat(_groupChannelPrefix, groupId, nameof(groupId)));

    /// <summary>The channel every node subscribes to for group joins and leaves.</summary>
    public RedisChannel GroupChangesChannel { get; }

    /// <summary>The channel on which one node receives acknowledgements of the membership changes it announced.</summary>
    public RedisChannel GroupAckChannel(string nodeId) => Channel(Concat(_groupAckPrefix, nodeId, nameof(nodeId)));

    private readonly string _dispatchPrefix;

    /// <summary>The stream of jobs enqueued without an ordering key.</summary>
    public RedisKey SharedJobs { get; }

    /// <summary>The attempt records of retrying unkeyed jobs.</summary>
    public RedisKey SharedAttempts { get; }

    /// <summary>The dead-letter stream of unkeyed jobs.</summary>
    public RedisKey SharedDeadLetters { get; }

    /// <summary>The sorted set of live dispatcher instances (score: membership expiry, server unix ms).</summary>
    public RedisKey DispatcherMembers { get; }

    /// <summary>The wake-up channel of enqueuers that do not know the partition owners (payload: partitions).</summary>
    public RedisChannel DispatcherWakeChannel { get; }

    /// <summary>The wake-up channel of one dispatcher instance (payload: partitions it owns that got jobs).</summary>
    public RedisChannel DispatcherInstanceWakeChannel(string instanceId) => Channel(Encoding.UTF8.GetBytes(_dispatchPrefix + ":wake:" + instanceId));

    /// <summary>One key of one partition, in the partition's own slot: <c>{P:dispatch:i}:name</c>.</summary>
    public RedisKey Partition(int partition, string name)
        => (RedisKey)("{" + _dispatchPrefix + ":" + partition.ToString(CultureInfo.InvariantCulture) + "}:" + name);

    /// <summary>The sorted set of node heartbeats.</summary>
    public RedisKey Heartbeats { get; }

    /// <summary>The channel every node subscribes to.</summary>
    public RedisChannel AllNodesChannel { get; }

    /// <summary>The prefix of bucket <paramref name="bucket"/>'s user keys, passed to scripts that derive user keys from a node's index.</summary>
    public byte[] UserKeyPrefix(int bucket) => _userKeyPrefixes[bucket];

    /// <summary>The hash of one user's connections (<c>connectionId -&gt; nodeId</c>), in the user's bucket.</summary>
    public RedisKey User(string userId) => Concat(_userKeyPrefixes[PresenceBuckets.Of(userId)], userId, nameof(userId));

    /// <summary>The hash of one user's connections, when the caller already knows the user's bucket.</summary>
    public RedisKey User(int bucket, string userId) => Concat(_userKeyPrefixes[bucket], userId, nameof(userId));

    /// <summary>One node's connections in one bucket (<c>connectionId -&gt; userId</c>): what a sweep or repair reads.</summary>
    public RedisKey NodeIndex(int bucket, string nodeId) => Concat(_nodeKeyPrefixes[bucket], nodeId, nameof(nodeId));

    /// <summary>The count and XOR digest of one node's connections in one bucket.</summary>
    public RedisKey NodeDigest(int bucket, string nodeId) => Concat(_digestKeyPrefixes[bucket], nodeId, nameof(nodeId));

    /// <summary>The channel one node subscribes to for envelopes addressed to it.</summary>
    public RedisChannel NodeChannel(string nodeId)
    {
        if (_nodeChannels.TryGetValue(nodeId, out var channel))
        {
            return channel;
        }

        // Node ids change on every process start; over a long uptime with many deploys, start the cache afresh
        // rather than let it grow without bound.
        if (_nodeChannels.Count >= MaxCachedNodeChannels)
        {
            _nodeChannels.Clear();
        }

        return _nodeChannels.GetOrAdd(nodeId, id => Channel(Concat(_nodeChannelPrefix, id, nameof(nodeId))));
    }

    /// <summary>Encodes an id as strict UTF-8, rejecting unpaired surrogates.</summary>
    public static byte[] Utf8(string value, string paramName)
    {
        ArgumentException.ThrowIfNullOrEmpty(value, paramName);
        try
        {
            return StrictUtf8.GetBytes(value);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException($"'{paramName}' is not valid UTF-16 (it contains an unpaired surrogate).", paramName, ex);
        }
    }

    private RedisChannel Channel(byte[] name) => _sharded ? RedisChannel.Sharded(name) : RedisChannel.Literal(name);

    private static byte[] Concat(byte[] prefix, string id, ReadOnlySpan<byte> suffix, string paramName)
    {
        var head = Concat(prefix, id, paramName);
        var key = new byte[head.Length + suffix.Length];
        head.CopyTo(key, 0);
        suffix.CopyTo(key.AsSpan(head.Length));
        return key;
    }

    private static byte[] Concat(byte[] prefix, string id, string paramName)
    {
        ArgumentException.ThrowIfNullOrEmpty(id, paramName);
        int length;
        try
        {
            length = StrictUtf8.GetByteCount(id);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException($"'{paramName}' is not valid UTF-16 (it contains an unpaired surrogate).", paramName, ex);
        }

        var key = new byte[prefix.Length + length];
        prefix.CopyTo(key, 0);
        StrictUtf8.GetBytes(id, key.AsSpan(prefix.Length));
        return key;
    }
}
