using System.Diagnostics.Metrics;

namespace ChatScale.Redis.Internal;

/// <summary>
/// The instruments of ChatScale.Redis, on the same <c>Meter("ChatScale")</c> as ChatScale.Core, created through
/// <see cref="IMeterFactory"/> when one is available so tests and hosts can observe them per service provider.
/// </summary>
internal sealed class RedisMetrics : IDisposable
{
    public const string MeterName = "ChatScale";

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _published;
    private readonly Counter<long> _received;
    private readonly Counter<long> _malformed;
    private readonly Counter<long> _publishFailures;
    private readonly Counter<long> _swept;
    private readonly Counter<long> _repaired;
    private readonly Counter<long> _unconfirmed;
    private readonly Counter<long> _deadRoutes;

    public RedisMetrics(IMeterFactory? meterFactory)
    {
        if (meterFactory is null)
        {
            _meter = new Meter(MeterName);
            _ownsMeter = true;
        }
        else
        {
            _meter = meterFactory.Create(MeterName);
        }

        _published = _meter.CreateCounter<long>("chatscale.backplane.published", "{envelope}", "Envelopes published to the Redis backplane.");
        _received = _meter.CreateCounter<long>("chatscale.backplane.received", "{envelope}", "Envelopes received from the Redis backplane and handed to local connections.");
        _malformed = _meter.CreateCounter<long>("chatscale.backplane.malformed", "{envelope}", "Envelopes received from the Redis backplane that could not be decoded and were dropped.");
        _publishFailures = _meter.CreateCounter<long>("chatscale.backplane.publish_failures", "{publish}", "Publishes that failed because Redis was unreachable.");
        _swept = _meter.CreateCounter<long>("chatscale.presence.swept", "{connection}", "Presence entries of dead nodes removed by the sweep.");
        _repaired = _meter.CreateCounter<long>("chatscale.presence.repaired", "{connection}", "Presence entries a heartbeat's reconciliation re-registered (kind=lost) or removed (kind=ghost).");
        _deadRoutes = _meter.CreateCounter<long>("chatscale.backplane.dead_routes", "{user}", "Recipients routed to a node channel that had no subscriber, reported offline.");
        _unconfirmed = _meter.CreateCounter<long>("chatscale.presence.unconfirmed", "{connection}", "Registers or unregisters Redis did not confirm, whose removal is retried until it does.");
    }

    public void Published(int envelopes) => _published.Add(envelopes);

    public void Received() => _received.Add(1);

    public void Malformed() => _malformed.Add(1);

    public void PublishFailed() => _publishFailures.Add(1);

    public void Swept(long connections)
    {
        if (connections > 0)
        {
            _swept.Add(connections);
        }
    }

    public void Repaired(int lost, int ghosts)
    {
        if (lost > 0)
        {
            _repaired.Add(lost, new KeyValuePair<string, object?>("kind", "lost"));
        }

        if (ghosts > 0)
        {
            _repaired.Add(ghosts, new KeyValuePair<string, object?>("kind", "ghost"));
        }
    }

    public void Unconfirmed() => _unconfirmed.Add(1);

    public void DeadRoute(int users) => _deadRoutes.Add(users);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
