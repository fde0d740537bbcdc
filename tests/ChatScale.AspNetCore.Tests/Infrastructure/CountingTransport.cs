using System.Text;
using ChatScale.Connections;

namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>A connection transport that counts frames (by content) instead of keeping them: 10,000 of them stay small.</summary>
internal sealed class CountingTransport : IConnectionTransport
{
    private readonly Dictionary<string, int> _frames = new(StringComparer.Ordinal);
    private int _total;

    public int Total => Volatile.Read(ref _total);

    public int Frames(ReadOnlySpan<byte> frame)
    {
        var key = Encoding.UTF8.GetString(frame);
        lock (_frames)
        {
            return _frames.GetValueOrDefault(key);
        }
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        var key = Encoding.UTF8.GetString(frame.Span);
        lock (_frames)
        {
            _frames[key] = _frames.GetValueOrDefault(key) + 1;
        }

        Interlocked.Increment(ref _total);
        return ValueTask.CompletedTask;
    }

    public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
