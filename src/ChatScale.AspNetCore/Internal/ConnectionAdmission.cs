using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Decides, before any presence write or upgrade, whether this node takes one more WebSocket: at most
/// <see cref="ChatScaleEndpointOptions.MaxConnectionsPerUser"/> per user (429), at most
/// <see cref="ChatScaleEndpointOptions.MaxConnections"/> on the node (503 + Retry-After), and at most
/// <see cref="ChatScaleEndpointOptions.MaxConcurrentUpgrades"/> handshakes in progress (more wait for a slot, up to
/// <see cref="UpgradeQueueTimeout"/>, then 503 + Retry-After), so a burst of upgrades cannot queue unbounded presence
/// writes on the shared Redis connection in front of the node's heartbeats and dispatcher leases.
/// Counts are of this node only; a refusal costs no Redis command.
/// </summary>
internal sealed class ConnectionAdmission : IDisposable
{
    // Seconds a client refused for capacity waits before retrying; the browser client adds its own jittered back-off.
    internal const int RetryAfterSeconds = 5;

    // How long a handshake waits for one of the MaxConcurrentUpgrades slots before it is refused.
    internal static readonly TimeSpan UpgradeQueueTimeout = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<string, int> _perUser = new(StringComparer.Ordinal);
    private readonly AspNetCoreMetrics _metrics;
    private readonly ILogger _logger;
    private readonly int _perUserCap;
    private readonly SemaphoreSlim? _upgrades;
    private readonly string _retryAfter = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
    private int _open;

    public ConnectionAdmission(IOptions<ChatScaleEndpointOptions> options, AspNetCoreMetrics metrics, ILogger<ConnectionAdmission> logger)
    {
        var o = options.Value;
        _metrics = metrics;
        _logger = logger;
        _perUserCap = o.MaxConnectionsPerUser == 0 ? int.MaxValue : o.MaxConnectionsPerUser;
        _upgrades = o.MaxConcurrentUpgrades == 0 ? null : new SemaphoreSlim(o.MaxConcurrentUpgrades, o.MaxConcurrentUpgrades);
        var budget = FileDescriptorLimit.Budget;
        NodeCap = o.MaxConnections ?? budget?.WebSockets ?? int.MaxValue;
        if (budget is not null)
        {
            AspNetCoreLog.NodeCap(_logger, NodeCap, budget.Limit, budget.OpenAtStart);
            if (NodeCap >= budget.Limit - budget.OpenAtStart)
            {
                AspNetCoreLog.NodeCapAboveFileLimit(_logger, NodeCap, budget.Limit);
            }
        }
    }

    /// <summary>The most WebSocket connections this node holds at once (<see cref="int.MaxValue"/> when unbounded).</summary>
    public int NodeCap { get; }

    /// <summary>Connections admitted and not yet released (upgrading or open).</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>
    /// Admits one connection of <paramref name="userId"/>, or writes the refusal (status, <c>Retry-After</c>,
    /// <c>Connection: close</c>) and returns null. Dispose the result when the connection has fully ended.
    /// </summary>
    public async ValueTask<Admitted?> AdmitAsync(HttpContext context, string userId)
    {
        if (Interlocked.Increment(ref _open) > NodeCap)
        {
            Interlocked.Decrement(ref _open);
            Refuse(context, StatusCodes.Status503ServiceUnavailable, "node_full", $"node at its cap of {NodeCap} connections");
            return null;
        }

        if (!TryAddUser(userId))
        {
            Interlocked.Decrement(ref _open);
            Refuse(context, StatusCodes.Status429TooManyRequests, "user_full", $"user at its cap of {_perUserCap} connections");
            return null;
        }

        var admitted = new Admitted(this, userId);
        try
        {
            if (_upgrades is not null && !await _upgrades.WaitAsync(UpgradeQueueTimeout, context.RequestAborted).ConfigureAwait(false))
            {
                admitted.Dispose();
                Refuse(context, StatusCodes.Status503ServiceUnavailable, "upgrades_busy", "too many upgrades in progress");
                return null;
            }
        }
        catch (OperationCanceledException)
        {
            // The client gave up while waiting.
            admitted.Dispose();
            return null;
        }

        admitted.HoldsUpgradeSlot = _upgrades is not null;
        return admitted;
    }

    public void Dispose() => _upgrades?.Dispose();

    private bool TryAddUser(string userId)
    {
        while (true)
        {
            if (!_perUser.TryGetValue(userId, out var count))
            {
                if (_perUser.TryAdd(userId, 1))
                {
                    return true;
                }
            }
            else if (count >= _perUserCap)
            {
                return false;
            }
            else if (_perUser.TryUpdate(userId, count + 1, count))
            {
                return true;
            }
        }
    }

    private void RemoveUser(string userId)
    {
        while (true)
        {
            var count = _perUser[userId];

            // Remove at zero, only if nobody changed the count meanwhile, so the map holds only connected users.
            if (count == 1 ? _perUser.TryRemove(new KeyValuePair<string, int>(userId, 1)) : _perUser.TryUpdate(userId, count - 1, count))
            {
                return;
            }
        }
    }

    private void Refuse(HttpContext context, int statusCode, string metricReason, string reason)
    {
        AspNetCoreLog.RequestRejected(_logger, statusCode, reason);
        _metrics.Rejected(metricReason);
        if (context.Response.HasStarted)
        {
            return;
        }

        context.Response.StatusCode = statusCode;
        context.Response.Headers.RetryAfter = _retryAfter;

        // Give the socket back: a refused client holds no descriptor while it waits to retry.
        context.Response.Headers.Connection = "close";
    }

    /// <summary>One admitted connection; releases its slots once (the upgrade slot may be released earlier).</summary>
    internal sealed class Admitted : IDisposable
    {
        private readonly ConnectionAdmission _owner;
        private readonly string _userId;
        private int _upgrading;
        private int _open = 1;

        public Admitted(ConnectionAdmission owner, string userId)
        {
            _owner = owner;
            _userId = userId;
        }

        internal bool HoldsUpgradeSlot
        {
            set => _upgrading = value ? 1 : 0;
        }

        /// <summary>The handshake is over (upgraded or failed): the slot goes to the next one.</summary>
        public void Upgraded()
        {
            if (Interlocked.Exchange(ref _upgrading, 0) == 1)
            {
                _owner._upgrades!.Release();
            }
        }

        public void Dispose()
        {
            Upgraded();
            if (Interlocked.Exchange(ref _open, 0) == 1)
            {
                _owner.RemoveUser(_userId);
                Interlocked.Decrement(ref _owner._open);
            }
        }
    }
}
