namespace ChatScale;

/// <summary>
/// Whether this node can receive what other nodes publish to it: a backplane whose receiver is not subscribed must
/// not claim its users, or their messages would be reported delivered and silently lost.
/// </summary>
/// <remarks>
/// <para>One per process (a singleton). Without a backplane (the in-memory default) it is always receiving. The Redis
/// backplane's listener marks it not receiving until its subscriptions are confirmed and whenever its subscription
/// connection fails. While not receiving, the node stops heartbeating presence (so other nodes count its users offline
/// once <see cref="ChatScaleOptions.PresenceTimeout"/> passes, and push to them) and the backplane health check reports
/// Unhealthy. When it receives again, the listener closes this node's connections with 1012 (Service Restart): they
/// may have missed frames meanwhile, and a client reconnects and catches up from the application's history.</para>
/// </remarks>
public sealed class BackplaneReadiness
{
    private readonly Lock _gate = new();
    private volatile State _state = new(true, "receiving", DateTimeOffset.UtcNow);

    /// <summary>Whether the node is subscribed to everything it must receive.</summary>
    public bool IsReceiving => _state.Receiving;

    /// <summary>Why the node is (not) receiving, for health reports and logs.</summary>
    public string Reason => _state.Reason;

    /// <summary>When <see cref="IsReceiving"/> last changed.</summary>
    public DateTimeOffset Since => _state.Since;

    /// <summary>Marks the node receiving. For backplane implementations.</summary>
    /// <returns><see langword="true"/> if it was not receiving before.</returns>
    public bool MarkReceiving() => Set(true, "receiving");

    /// <summary>Marks the node not receiving. For backplane implementations.</summary>
    /// <param name="reason">Why, in a few words.</param>
    /// <returns><see langword="true"/> if it was receiving before.</returns>
    public bool MarkNotReceiving(string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(reason);
        return Set(false, reason);
    }

    private bool Set(bool receiving, string reason)
    {
        lock (_gate)
        {
            var previous = _state;
            if (previous.Receiving == receiving)
            {
                return false;
            }

            _state = new State(receiving, reason, DateTimeOffset.UtcNow);
            return true;
        }
    }

    private sealed record State(bool Receiving, string Reason, DateTimeOffset Since);
}
