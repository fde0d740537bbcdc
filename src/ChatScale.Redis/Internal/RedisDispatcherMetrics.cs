using System.Diagnostics.Metrics;
using System.Globalization;

namespace ChatScale.Redis.Internal;

/// <summary>
/// The instruments of <see cref="RedisStreamDispatcher"/> on <c>Meter("ChatScale")</c>. Job outcome and backlog
/// instruments have the same names as the in-memory dispatcher's, so dashboards work with either.
/// </summary>
internal sealed class RedisDispatcherMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _outcomes;
    private readonly Histogram<double> _duration;
    private readonly Func<IReadOnlyList<long>> _lags;
    private readonly Func<DispatcherStatistics> _backlog;
    private readonly string[] _partitionTags;

    public RedisDispatcherMetrics(IMeterFactory? meterFactory, int partitions, Func<DispatcherStatistics> backlog, Func<IReadOnlyList<long>> lags)
    {
        if (meterFactory is null)
        {
            _meter = new Meter(RedisMetrics.MeterName);
            _ownsMeter = true;
        }
        else
        {
            _meter = meterFactory.Create(RedisMetrics.MeterName);
        }

        _backlog = backlog;
        _lags = lags;
        _partitionTags = new string[partitions + 1];
        for (var i = 0; i < partitions; i++)
        {
            _partitionTags[i] = i.ToString(CultureInfo.InvariantCulture);
        }

        _partitionTags[partitions] = "shared";
        _outcomes = _meter.CreateCounter<long>("chatscale.dispatch.jobs", "{job}", "Background job attempts by outcome (succeeded, retried, dead_lettered).");
        _duration = _meter.CreateHistogram<double>("chatscale.dispatch.duration", "s", "Duration of one background job attempt.");
        _meter.CreateObservableGauge("chatscale.dispatch.pending", () => _backlog().Pending, "{job}", "Background jobs stored in Redis and not running on this node (read when observed, at most a third of the lease TTL old).");
        _meter.CreateObservableGauge("chatscale.dispatch.in_flight", () => _backlog().InFlight, "{job}", "Background jobs running on this node now.");
        _meter.CreateObservableGauge("chatscale.dispatch.dead_lettered", () => _backlog().DeadLettered, "{job}", "Background jobs in the dead-letter streams (read when observed, at most a third of the lease TTL old).");
        _meter.CreateObservableGauge("chatscale.dispatch.partition.lag", ObserveLags, "{job}", "Unfinished jobs per partition stream (tag partition; \"shared\" for unkeyed jobs). Cluster-wide values: every node reports them, so take the max, not the sum.");
    }

    public void Succeeded(TimeSpan duration) => Outcome("succeeded", duration);

    public void Retried(TimeSpan duration) => Outcome("retried", duration);

    public void DeadLettered(TimeSpan duration) => Outcome("dead_lettered", duration);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private IEnumerable<Measurement<long>> ObserveLags()
    {
        var lags = _lags();
        var result = new Measurement<long>[Math.Min(lags.Count, _partitionTags.Length)];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = new Measurement<long>(lags[i], new KeyValuePair<string, object?>("partition", _partitionTags[i]));
        }

        return result;
    }

    private void Outcome(string outcome, TimeSpan duration)
    {
        var tag = new KeyValuePair<string, object?>("outcome", outcome);
        _outcomes.Add(1, tag);
        _duration.Record(duration.TotalSeconds, tag);
    }
}
