using System.Diagnostics.Metrics;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The instruments of ChatScale.AspNetCore, on the library's one <c>Meter("ChatScale")</c>, created through
/// <see cref="IMeterFactory"/> so tests and hosts can observe them per service provider.
/// </summary>
internal sealed class AspNetCoreMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _closed;
    private readonly Counter<long> _messages;

    public AspNetCoreMetrics(IMeterFactory? meterFactory = null)
    {
        if (meterFactory is null)
        {
            _meter = new Meter(ChatScaleOptions.SectionName);
            _ownsMeter = true;
        }
        else
        {
            _meter = meterFactory.Create(ChatScaleOptions.SectionName);
        }

        _rejected = _meter.CreateCounter<long>("chatscale.websocket.rejected", "{request}", "WebSocket requests refused before the upgrade, by reason.");
        _closed = _meter.CreateCounter<long>("chatscale.websocket.closed", "{connection}", "WebSocket connections ended, by how they ended.");
        _messages = _meter.CreateCounter<long>("chatscale.websocket.messages_received", "{message}", "Valid client -> server messages received.");
    }

    public void Rejected(string reason) => _rejected.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void Closed(string outcome) => _closed.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    public void MessageReceived() => _messages.Add(1);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
