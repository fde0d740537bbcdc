using System.Diagnostics;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Reads users' presence entries (one <c>HVALS</c> per user, pipelined: StackExchange.Redis sends each to the shard
/// that owns it) and judges every node they name against this process's copy of the heartbeats.
/// </summary>
/// <remarks>
/// A node that the copy does not know, or calls dead, makes the reader ask Redis again (a refresh that started after
/// the replies arrived) before its users are called offline. A new node heartbeats before its first register, and a
/// node that came back heartbeats before it takes clients again, so a fresh copy never misses a client that has its
/// 101; lookups of known, live nodes cost no read of the heartbeats.
/// </remarks>
internal sealed class PresenceReader(NodeLiveness liveness)
{
    /// <summary>The entries of each of <paramref name="userKeys"/> (connectionId -&gt; nodeId values), and the state of every node named.</summary>
    /// <exception cref="BackplaneUnavailableException">Redis did not answer.</exception>
    public async Task<(Task<RedisValue[]>[] Entries, Dictionary<string, NodeLiveness.State> Nodes)> ReadAsync(
        IDatabase database, RedisKey[] userKeys, string operation, CancellationToken cancellationToken)
    {
        var snapshot = liveness.Current(out var stale);
        var refresh = stale ? liveness.RefreshStaleAsync(cancellationToken) : null;
        var reads = new Task<RedisValue[]>[userKeys.Length];
        if (reads.Length == 1)
        {
            reads[0] = database.HashValuesAsync(userKeys[0]);
        }
        else
        {
            var batch = database.CreateBatch();
            for (var i = 0; i < reads.Length; i++)
            {
                reads[i] = batch.HashValuesAsync(userKeys[i]);
            }

            RedisFailures.Execute(batch, reads, refresh, operation);
        }

        await WaitAsync(reads, refresh, operation, cancellationToken).ConfigureAwait(false);
        var answeredAt = Stopwatch.GetTimestamp();
        snapshot = refresh is null ? snapshot! : await refresh.ConfigureAwait(false);
        var states = new Dictionary<string, NodeLiveness.State>(StringComparer.Ordinal);
        if (Judge(reads, snapshot, states))
        {
            snapshot = await RedisFailures.RunAsync(liveness.RefreshAsync(answeredAt, CancellationToken.None), "node liveness refresh", CancellationToken.None).ConfigureAwait(false);
            states.Clear();
            Judge(reads, snapshot, states);
        }

        return (reads, states);
    }

    // Judges every node named in the replies; true if one is unknown to the snapshot or dead by it.
    private bool Judge(Task<RedisValue[]>[] reads, NodeLiveness.Snapshot snapshot, Dictionary<string, NodeLiveness.State> states)
    {
        var unknown = false;
        foreach (var read in reads)
        {
            foreach (var value in read.Result)
            {
                var nodeId = (string)value!;
                if (!states.ContainsKey(nodeId))
                {
                    var state = liveness.Check(snapshot, nodeId);
                    unknown |= state != NodeLiveness.State.Alive;
                    states[nodeId] = state;
                }
            }
        }

        return unknown;
    }

    private static async Task WaitAsync(Task<RedisValue[]>[] reads, Task<NodeLiveness.Snapshot>? refresh, string operation, CancellationToken cancellationToken)
    {
        try
        {
            await RedisFailures.WaitAllAsync(reads, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
        {
            RedisFailures.Observe(refresh);
            throw RedisFailures.Unavailable(operation, ex);
        }
        catch
        {
            RedisFailures.Observe(refresh);
            throw;
        }

        if (refresh is not null)
        {
            await RedisFailures.RunAsync(refresh, operation, cancellationToken).ConfigureAwait(false);
        }
    }
}
