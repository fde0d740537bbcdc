using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// This process's copy of every node's last heartbeat (Redis server time), so a lookup decides liveness locally
/// instead of reading the heartbeats key each time.
/// </summary>
/// <remarks>
/// <para>The copy is refreshed from the heartbeats key (one script returning the server clock and the whole sorted
/// set): by every heartbeat of this node, in the background once it is older than half the refresh interval, and
/// awaited when older than the full interval. The server's "now" is the clock read at refresh plus the local time
/// elapsed since, so nodes' clocks never matter.</para>
/// <para>A node the copy does not know yet is never judged from it: the caller asks for a refresh that started after
/// it saw the node (<see cref="RefreshAsync"/>). A node heartbeats before it registers its first connection, so such a
/// refresh always sees a node that is really alive; this keeps "a client that has its 101 is reachable from every
/// node" while lookups of known nodes cost no Redis read.</para>
/// </remarks>
internal sealed class NodeLiveness
{
    private readonly Func<CancellationToken, Task<RedisResult>> _read;
    private readonly long _timeoutMs;
    private readonly long _refreshTicks;
    private readonly Lock _gate = new();
    private Snapshot? _current;
    private Task<Snapshot>? _refreshing;
    private long _refreshingStarted;

    public NodeLiveness(Func<CancellationToken, Task<RedisResult>> read, TimeSpan timeout, TimeSpan heartbeatInterval)
    {
        _read = read;
        _timeoutMs = (long)timeout.TotalMilliseconds;

        // A live node's copy is at most (its heartbeat interval + the refresh interval) old; keep that under the timeout.
        var refresh = TimeSpan.FromTicks(Math.Min(heartbeatInterval.Ticks, (timeout - heartbeatInterval).Ticks / 2));
        _refreshTicks = (long)(Math.Max(refresh.TotalMilliseconds, 20) * Stopwatch.Frequency / 1000);
    }

    public enum State
    {
        Alive,
        Dead,
        Unknown,
    }

    /// <summary>The current copy, refreshing it in the background when it is getting old; null or stale means "await <see cref="RefreshAsync"/>".</summary>
    public Snapshot? Current(out bool stale)
    {
        var current = Volatile.Read(ref _current);
        var now = Stopwatch.GetTimestamp();
        stale = current is null || now - current.ReadAt > _refreshTicks;
        if (!stale && now - current!.ReadAt > _refreshTicks / 2)
        {
            RedisFailures.Observe(RefreshAsync(now - (_refreshTicks / 4), CancellationToken.None));
        }

        return current;
    }

    /// <summary>A copy no older than half the refresh interval (for a caller whose <see cref="Current"/> was stale).</summary>
    public Task<Snapshot> RefreshStaleAsync(CancellationToken cancellationToken)
        => RefreshAsync(Stopwatch.GetTimestamp() - (_refreshTicks / 2), cancellationToken);

    /// <summary>A copy read by a refresh that started at or after <paramref name="startedAtOrAfter"/> (a <see cref="Stopwatch"/> timestamp).</summary>
    public Task<Snapshot> RefreshAsync(long startedAtOrAfter, CancellationToken cancellationToken)
    {
        Task<Snapshot> task;
        lock (_gate)
        {
            if (_current is { } c && c.Started >= startedAtOrAfter)
            {
                return Task.FromResult(c);
            }

            if (_refreshing is { } r && _refreshingStarted >= startedAtOrAfter)
            {
                task = r;
            }
            else
            {
                _refreshingStarted = Stopwatch.GetTimestamp();
                task = _refreshing = ReadAsync(_refreshingStarted);
            }
        }

        return RedisFailures.WaitAsync(task, cancellationToken);
    }

    /// <summary>Takes the copy from a heartbeat's reply (<see cref="PresenceScripts.Heartbeat"/>).</summary>
    public Snapshot Update(RedisResult reply, long started)
    {
        var parts = (RedisResult[])reply!;
        var serverNow = (long)parts[0];
        var flat = (RedisResult[])parts[1]!;
        var scores = new Dictionary<string, long>(flat.Length / 2, StringComparer.Ordinal);
        for (var i = 0; i + 1 < flat.Length; i += 2)
        {
            scores[(string)flat[i]!] = long.Parse((string)flat[i + 1]!, NumberStyles.Integer, CultureInfo.InvariantCulture);
        }

        var snapshot = new Snapshot(scores, serverNow, Stopwatch.GetTimestamp(), started);
        lock (_gate)
        {
            if (_current is null || _current.Started <= started)
            {
                _current = snapshot;
            }
        }

        return snapshot;
    }

    /// <summary>Whether <paramref name="nodeId"/> was alive by <paramref name="snapshot"/>, judged at this moment.</summary>
    public State Check(Snapshot snapshot, string nodeId)
    {
        if (!snapshot.Scores.TryGetValue(nodeId, out var score))
        {
            return State.Unknown;
        }

        return snapshot.ServerNowMs(Stopwatch.GetTimestamp()) - score <= _timeoutMs ? State.Alive : State.Dead;
    }

    /// <summary>The nodes whose last heartbeat is older than the timeout, by <paramref name="snapshot"/>.</summary>
    public List<string> DeadNodes(Snapshot snapshot)
    {
        var now = snapshot.ServerNowMs(Stopwatch.GetTimestamp());
        var dead = new List<string>();
        foreach (var pair in snapshot.Scores)
        {
            if (now - pair.Value > _timeoutMs)
            {
                dead.Add(pair.Key);
            }
        }

        return dead;
    }

    private async Task<Snapshot> ReadAsync(long started)
    {
        await Task.Yield();
        try
        {
            return Update(await _read(CancellationToken.None).ConfigureAwait(false), started);
        }
        finally
        {
            lock (_gate)
            {
                if (_refreshingStarted == started)
                {
                    _refreshing = null;
                }
            }
        }
    }

    /// <summary>Every node's last heartbeat (server unix ms), and the server clock when it was read.</summary>
    /// <param name="Scores">Node id to last heartbeat.</param>
    /// <param name="ServerNow">The server clock at the read.</param>
    /// <param name="ReadAt">The local <see cref="Stopwatch"/> timestamp of the reply.</param>
    /// <param name="Started">The local timestamp at which the read was sent.</param>
    public sealed record Snapshot(Dictionary<string, long> Scores, long ServerNow, long ReadAt, long Started)
    {
        public long ServerNowMs(long timestamp) => ServerNow + ((timestamp - ReadAt) * 1000 / Stopwatch.Frequency);
    }
}
