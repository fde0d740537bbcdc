using System.Collections.Concurrent;
using System.Text;
using ChatScale.Connections;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>A connection transport that records every frame it is asked to send.</summary>
public sealed class FakeTransport : IConnectionTransport
{
    private readonly ConcurrentQueue<string> _frames = new();

    public IReadOnlyList<string> Frames => [.. _frames];

    public int Count => _frames.Count;

    public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        _frames.Enqueue(Encoding.UTF8.GetString(frame.Span));
        return ValueTask.CompletedTask;
    }

    /// <summary>The status the connection was closed with, if it was.</summary>
    public ConnectionCloseStatus? ClosedWith { get; private set; }

    public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken)
    {
        ClosedWith = status;
        return ValueTask.CompletedTask;
    }

    /// <summary>Waits until at least <paramref name="count"/> frames have arrived.</summary>
    public Task WaitForAsync(int count, string? what = null)
        => Eventually.TrueAsync(() => _frames.Count >= count, what ?? $"{count} frame(s)");
}
