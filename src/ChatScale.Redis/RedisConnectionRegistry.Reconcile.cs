using ChatScale.Redis.Internal;
using StackExchange.Redis;

namespace ChatScale.Redis;

// The registry's reconciliation: retrying removals Redis has not confirmed, and comparing (and repairing) each
// bucket's set against the node's own on every heartbeat.
public sealed partial class RedisConnectionRegistry
{
    private async Task RetryUnconfirmedAsync(string nodeId, NodePresence node, CancellationToken cancellationToken)
    {
        List<Task>? retries = null;
        foreach (var pair in _unconfirmed)
        {
            if (pair.Value.NodeId == nodeId)
            {
                (retries ??= []).Add(RetryOneAsync(pair, cancellationToken));
            }
        }

        if (retries is not null)
        {
            await Task.WhenAll(retries).ConfigureAwait(false);
        }

        async Task RetryOneAsync(KeyValuePair<string, ConnectionRegistration> pending, CancellationToken ct)
        {
            try
            {
                await UnregisterInRedisAsync(pending.Value, ct).ConfigureAwait(false);
                if (_unconfirmed.TryRemove(pending))
                {
                    RedisLog.UnconfirmedRemoved(_logger, pending.Value.ConnectionId, pending.Value.NodeId);
                }
            }
            catch (Exception ex) when (ex is BackplaneUnavailableException or OperationCanceledException)
            {
                // Still unconfirmed: the next heartbeat tries again.
            }
        }
    }

    // Compares the digest of every bucket the node used with Redis's, and repairs those that differ.
    private async Task ReconcileAsync(string nodeId, NodePresence node, CancellationToken cancellationToken)
    {
        var before = new NodePresence.State[PresenceBuckets.Count];
        var reads = new Task<RedisValue[]>[PresenceBuckets.Count];
        var batch = Database.CreateBatch();
        RedisValue[] fields = ["n", "x"];
        for (var b = 0; b < before.Length; b++)
        {
            before[b] = node.Read(b);
            reads[b] = batch.HashGetAsync(_keys.NodeDigest(b, nodeId), fields);
        }

        Execute(batch, reads, null, "presence reconcile");
        List<int>? differing = null;
        for (var b = 0; b < reads.Length; b++)
        {
            var values = await Run(reads[b], "presence reconcile", cancellationToken).ConfigureAwait(false);
            var after = node.Read(b);
            if (before[b].InFlight != 0 || after.InFlight != 0 || before[b].Epoch != after.Epoch)
            {
                continue; // A write raced the read: compare on the next heartbeat.
            }

            var count = values[0].IsNull ? 0 : (long)values[0];
            var digest = values[1].IsNull ? 0 : (int)(long)values[1];
            if (count != after.Count || digest != after.Digest)
            {
                (differing ??= []).Add(b);
            }
        }

        if (differing is null)
        {
            return;
        }

        var repairs = new Task<(int Lost, int Ghosts)>[differing.Count];
        for (var i = 0; i < repairs.Length; i++)
        {
            repairs[i] = RepairAsync(nodeId, node, differing[i], cancellationToken);
        }

        var results = await Task.WhenAll(repairs).ConfigureAwait(false);
        int lost = 0, ghosts = 0;
        foreach (var (l, g) in results)
        {
            lost += l;
            ghosts += g;
        }

        _metrics.Repaired(lost, ghosts);
        if (lost + ghosts > 0)
        {
            RedisLog.PresenceRepaired(_logger, nodeId, differing.Count, lost, ghosts);
        }
    }

    private async Task<(int Lost, int Ghosts)> RepairAsync(string nodeId, NodePresence node, int bucket, CancellationToken cancellationToken)
    {
        var index = await Run(Database.HashGetAllAsync(_keys.NodeIndex(bucket, nodeId)), "presence repair", cancellationToken).ConfigureAwait(false);

        // Taken after the read: a connection registered before it is held or still registering, never a ghost.
        var (held, registering) = node.Snapshot(bucket);
        var inRedis = new HashSet<string>(index.Length, StringComparer.Ordinal);
        foreach (var entry in index)
        {
            inRedis.Add((string)entry.Name!);
        }

        var heldIds = new HashSet<string>(held.Length, StringComparer.Ordinal);
        var writes = new List<Task>();
        var lost = new List<ConnectionRegistration>();
        foreach (var c in held)
        {
            heldIds.Add(c.ConnectionId);
            if (!inRedis.Contains(c.ConnectionId))
            {
                lost.Add(c);
                writes.Add(RepairWriteAsync(node, bucket, RegisterInRedisAsync(c, bucket, "presence restore", cancellationToken)));
            }
        }

        var ghosts = 0;
        foreach (var entry in index)
        {
            var connectionId = (string)entry.Name!;
            if (!heldIds.Contains(connectionId) && !registering.Contains(connectionId))
            {
                ghosts++;
                var ghost = new ConnectionRegistration(connectionId, (string)entry.Value!, nodeId);
                writes.Add(RepairWriteAsync(node, bucket, UnregisterAsync(ghost, bucket)));
            }
        }

        await Task.WhenAll(writes).ConfigureAwait(false);

        // A connection that closed while it was being restored is taken back out, so a restore never resurrects one.
        foreach (var c in lost)
        {
            if (!node.Contains(bucket, c.ConnectionId))
            {
                await UnregisterInRedisAsync(c, cancellationToken).ConfigureAwait(false);
            }
        }

        await Run(Database.ScriptEvaluateAsync(PresenceScripts.RebuildDigest, [_keys.NodeIndex(bucket, nodeId), _keys.NodeDigest(bucket, nodeId)]), "presence repair", cancellationToken).ConfigureAwait(false);
        return (lost.Count, ghosts);

        async Task UnregisterAsync(ConnectionRegistration ghost, int b)
        {
            await UnregisterScriptAsync(ghost, b, cancellationToken).ConfigureAwait(false);
            _unconfirmed.TryRemove(new KeyValuePair<string, ConnectionRegistration>(ghost.ConnectionId, ghost));
        }
    }

    private static async Task RepairWriteAsync(NodePresence node, int bucket, Task write)
    {
        node.BeginRepair(bucket);
        try
        {
            await write.ConfigureAwait(false);
        }
        finally
        {
            node.EndUnregister(bucket);
        }
    }
}
