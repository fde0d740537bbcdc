using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ChatScale.Diagnostics;

/// <summary>
/// The instruments of ChatScale.Core, all on <c>Meter("ChatScale")</c>. Created through <see cref="IMeterFactory"/>
/// when one is available, so tests and hosts can observe them per service provider.
/// </summary>
internal sealed class ChatScaleMetrics : IDisposable
{
    public const string MeterName = "ChatScale";

    /// <summary>The one activity source of ChatScale; every package starts its spans here.</summary>
    public static readonly ActivitySource ActivitySource = new(MeterName);

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _deliveries;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _slowConsumerCloses;
    private readonly UpDownCounter<long> _connections;
    private readonly Counter<long> _dispatchOutcomes;
    private readonly Histogram<double> _dispatchDuration;

    public ChatScaleMetrics(IMeterFactory? meterFactory = null)
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

        _connections = _meter.CreateUpDownCounter<long>("chatscale.connections", "{connection}", "Open client connections on this node.");
        _deliveries = _meter.CreateCounter<long>("chatscale.deliveries", "{frame}", "Frames queued to local connections.");
        _dropped = _meter.CreateCounter<long>("chatscale.frames.dropped", "{frame}", "Frames dropped because a connection's send queue was full (drop-oldest policy).");
        _slowConsumerCloses = _meter.CreateCounter<long>("chatscale.connections.slow_consumer_closed", "{connection}", "Connections closed because their send queue was full (close policy).");
        _dispatchOutcomes = _meter.CreateCounter<long>("chatscale.dispatch.jobs", "{job}", "Background job attempts by outcome (succeeded, retried, dead_lettered).");
        _dispatchDuration = _meter.CreateHistogram<double>("chatscale.dispatch.duration", "s", "Duration of one background job attempt.");
    }

    // Observable gauges are created by the one component that owns the value (LocalConnections, a dispatcher), never
    // by every user of this class: several ChatScaleMetrics share one factory-created meter, and a gauge registered
    // by each would report the same name several times, with zeros from the components that do not own it.
    public void ObserveQueueDepth(Func<long> depth)
        => _meter.CreateObservableGauge("chatscale.send_queue.depth", depth, "{frame}", "Frames waiting in all local send queues.");

    public void ObserveDispatcherBacklog(Func<DispatcherStatistics> backlog)
    {
        _meter.CreateObservableGauge("chatscale.dispatch.pending", () => backlog().Pending, "{job}", "Background jobs accepted but not started.");
        _meter.CreateObservableGauge("chatscale.dispatch.in_flight", () => backlog().InFlight, "{job}", "Background jobs running now.");
        _meter.CreateObservableGauge("chatscale.dispatch.dead_lettered", () => backlog().DeadLettered, "{job}", "Background jobs in the dead-letter queue.");
    }

    public void ConnectionOpened() => _connections.Add(1);

    public void ConnectionClosed() => _connections.Add(-1);

    public void Delivered(long frames)
    {
        if (frames > 0)
        {
            _deliveries.Add(frames);
        }
    }

    public void FrameDropped() => _dropped.Add(1);

    public void SlowConsumerClosed() => _slowConsumerCloses.Add(1);

    public void JobSucceeded(TimeSpan duration) => JobOutcome("succeeded", duration);

    public void JobRetried(TimeSpan duration) => JobOutcome("retried", duration);

    public void JobDeadLettered(TimeSpan duration) => JobOutcome("dead_lettered", duration);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private void JobOutcome(string outcome, TimeSpan duration)
    {
        var tag = new KeyValuePair<string, object?>("outcome", outcome);
        _dispatchOutcomes.Add(1, tag);
        _dispatchDuration.Record(duration.TotalSeconds, tag);
    }
}
