using System.Runtime.InteropServices;
using ChatScale.Connections;

namespace ChatScale.Core.Tests.TestSupport;

/// <summary>
/// A transport that records every frame it is asked to send. It can be gated: while <see cref="Block"/> is in force,
/// sends wait, which makes the connection a slow consumer.
/// </summary>
internal sealed class RecordingTransport : IConnectionTransport
{
    private readonly List<byte[]> _frames = [];
    private readonly List<ReadOnlyMemory<byte>> _raw = [];
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _sendEntered = new(0);
    private TaskCompletionSource _gate = CreateOpenGate();
    private int _concurrentSends;

    public Exception? FailWith { get; set; }

    public bool SawConcurrentSends { get; private set; }

    public ConnectionCloseStatus? ClosedWith { get; private set; }

    public Task Closed => _closed.Task;

    public IReadOnlyList<byte[]> Frames
    {
        get
        {
            lock (_frames)
            {
                return _frames.ToArray();
            }
        }
    }

    public IReadOnlyList<ReadOnlyMemory<byte>> RawFrames
    {
        get
        {
            lock (_frames)
            {
                return _raw.ToArray();
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_frames)
            {
                return _frames.Count;
            }
        }
    }

    /// <summary>Makes every following send wait until <see cref="Release"/>.</summary>
    public void Block() => Volatile.Write(ref _gate, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    public void Release() => Volatile.Read(ref _gate).TrySetResult();

    /// <summary>Waits until a send has started (and is possibly blocked).</summary>
    public Task<bool> WaitForSendAsync(TimeSpan timeout) => _sendEntered.WaitAsync(timeout);

    public async ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _concurrentSends) > 1)
        {
            SawConcurrentSends = true;
        }

        try
        {
            _sendEntered.Release();
            await Volatile.Read(ref _gate).Task.WaitAsync(cancellationToken);
            if (FailWith is { } failure)
            {
                throw failure;
            }

            lock (_frames)
            {
                _frames.Add(frame.ToArray());
                _raw.Add(frame);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _concurrentSends);
        }
    }

    public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken)
    {
        ClosedWith = status;
        _closed.TrySetResult();
        return ValueTask.CompletedTask;
    }

    public async Task WaitForCountAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (Count < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} frames, have {Count}.");
            }

            await Task.Delay(5);
        }
    }

    public static bool SameArray(ReadOnlyMemory<byte> a, ReadOnlyMemory<byte> b)
        => MemoryMarshal.TryGetArray(a, out var x) && MemoryMarshal.TryGetArray(b, out var y) && ReferenceEquals(x.Array, y.Array);

    private static TaskCompletionSource CreateOpenGate()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }
}
