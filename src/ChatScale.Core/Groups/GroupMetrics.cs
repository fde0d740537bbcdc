using System.Diagnostics.Metrics;

namespace ChatScale.Groups;

/// <summary>The <c>chatscale.groups.*</c> instruments of the in-memory group manager, on <c>Meter("ChatScale")</c>.</summary>
internal sealed class GroupMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _publishes;
    private readonly Counter<long> _membershipChanges;

    public GroupMetrics(IMeterFactory? meterFactory)
    {
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(Diagnostics.ChatScaleMetrics.MeterName) ?? new Meter(Diagnostics.ChatScaleMetrics.MeterName);
        _publishes = _meter.CreateCounter<long>("chatscale.groups.publishes", "{message}", "Messages published to a group.");
        _membershipChanges = _meter.CreateCounter<long>("chatscale.groups.members_changed", "{change}", "Users added to or removed from a group.");
    }

    public void Published() => _publishes.Add(1);

    public void MembershipChanged() => _membershipChanges.Add(1);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
