namespace ChatScale.Redis.Internal;

/// <summary>
/// One node's connections as this process holds them, per presence bucket: the set Redis must match. Each bucket keeps
/// the same count and XOR digest as Redis's digest hash, the registrations in flight, and an epoch that moves on every
/// change, so a heartbeat can tell a real difference from a register or unregister that was racing its read.
/// </summary>
internal sealed class NodePresence
{
    private readonly Bucket[] _buckets = new Bucket[PresenceBuckets.Count];

    public NodePresence()
    {
        for (var i = 0; i < _buckets.Length; i++)
        {
            _buckets[i] = new Bucket();
        }
    }

    /// <summary>Whether this process has heartbeated the node at least once (it must before its first registration is visible).</summary>
    public bool HasHeartbeated { get; set; }

    /// <summary>A register is about to be sent: from now until <see cref="EndRegister"/> the id is "in flight", not a ghost.</summary>
    public void BeginRegister(int bucket, string connectionId)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            b.Epoch++;
            b.InFlight++;
            b.Registering.Add(connectionId);
        }
    }

    /// <summary>The register ended; when Redis confirmed it, the connection joins the node's set.</summary>
    public void EndRegister(int bucket, ConnectionRegistration connection, bool confirmed)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            if (confirmed && b.Connections.TryAdd(connection.ConnectionId, connection))
            {
                b.Digest ^= PresenceBuckets.Digest(connection.ConnectionId);
            }

            b.Registering.Remove(connection.ConnectionId);
            b.InFlight--;
            b.Epoch++;
        }
    }

    /// <summary>An unregister (or a compensating one) is about to be sent; the connection leaves the node's set first.</summary>
    public void BeginUnregister(int bucket, string connectionId)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            b.Epoch++;
            b.InFlight++;
            if (b.Connections.Remove(connectionId))
            {
                b.Digest ^= PresenceBuckets.Digest(connectionId);
            }
        }
    }

    /// <summary>A repair write (re-register or ghost removal) is about to be sent: the set does not change, the epoch does.</summary>
    public void BeginRepair(int bucket)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            b.Epoch++;
            b.InFlight++;
        }
    }

    /// <summary>An unregister or repair write ended.</summary>
    public void EndUnregister(int bucket)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            b.InFlight--;
            b.Epoch++;
        }
    }

    public bool Contains(int bucket, string connectionId)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            return b.Connections.ContainsKey(connectionId);
        }
    }

    /// <summary>
    /// The node's digest of a bucket. Every bucket is compared, used or not: an entry Redis holds for this node in a
    /// bucket it never used is as much a ghost as any other.
    /// </summary>
    public State Read(int bucket)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            return new State(b.Connections.Count, b.Digest, b.Epoch, b.InFlight);
        }
    }

    /// <summary>The node's connections in a bucket and the ids being registered, for a repair.</summary>
    public (ConnectionRegistration[] Held, HashSet<string> Registering) Snapshot(int bucket)
    {
        var b = _buckets[bucket];
        lock (b)
        {
            return ([.. b.Connections.Values], [.. b.Registering]);
        }
    }

    /// <summary>A bucket's digest as the node sees it.</summary>
    /// <param name="Count">Connections held.</param>
    /// <param name="Digest">XOR of their <see cref="PresenceBuckets.Digest"/>.</param>
    /// <param name="Epoch">Moves on every change.</param>
    /// <param name="InFlight">Registers and unregisters not yet answered.</param>
    public readonly record struct State(int Count, int Digest, long Epoch, int InFlight);

    private sealed class Bucket
    {
        public readonly Dictionary<string, ConnectionRegistration> Connections = new(StringComparer.Ordinal);
        public readonly HashSet<string> Registering = new(StringComparer.Ordinal);
        public int Digest;
        public long Epoch;
        public int InFlight;
    }
}
