using System.Buffers;
using ChatScale.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ChatScale.Connections;

/// <summary>
/// One client connection on this node: a bounded FIFO send queue with one writer at a time, so frames reach the
/// transport in the order they were queued and a slow client only ever fills its own queue. Created by
/// <see cref="LocalConnections.Add"/>.
/// </summary>
/// <remarks>
/// The connection is scheduled, not its frames: the first frame queued on an idle connection puts the connection on
/// the thread pool once; it then hands the transport every frame queued at that moment as one burst
/// (<see cref="IConnectionTransport.SendBatchAsync"/>: one flush, one socket write), and keeps going while frames
/// arrive. A send that completes synchronously costs no further hop; one that waits resumes the writer where it
/// completes. An idle connection has no task, no waiter and no queue storage.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The stop source is cancelled by Abort/CloseAsync at any time, even after the writer finished, so it is never disposed; it owns no timer once cancelled.")]
public sealed class ClientConnection
{
    // A burst is every frame queued at that moment, up to this many frames and (past the first frame) this many bytes.
    private const int MaxBurstFrames = 64;
    private const int MaxBurstBytes = 64 * 1024;

    private const int Open = 0;
    private const int Closing = 1;

    private readonly Lock _lock = new();
    private readonly IConnectionTransport _transport;
    private readonly LocalConnections _owner;
    private readonly ChatScaleMetrics _metrics;
    private readonly ILogger _logger;
    private readonly SlowConsumerPolicy _policy;
    private readonly int _capacity;
    private readonly TimeSpan _slowConsumerCloseTimeout;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private FrameRing _queue;
    private bool _scheduled;
    private bool _finished;
    private int _state;
    private volatile bool _discardQueued;
    private long _dropped;
    private ConnectionCloseStatus? _closeStatus;
    private string _closeDescription = string.Empty;

    // The burst being sent while a send is pending.
    private ReadOnlyMemory<byte>[]? _burst;
    private int _burstCount;
    private ValueTask _pending;
    private Action? _onSendCompleted;
    private Writer? _writer;

    internal ClientConnection(string connectionId, string userId, IConnectionTransport transport, LocalConnections owner, ChatScaleOptions options, ChatScaleMetrics metrics, ILogger logger)
    {
        ConnectionId = connectionId;
        UserId = userId;
        _transport = transport;
        _owner = owner;
        _metrics = metrics;
        _logger = logger;
        _policy = options.SlowConsumerPolicy;
        _capacity = options.SendQueueCapacity;
        _slowConsumerCloseTimeout = options.SlowConsumerCloseTimeout;
    }

    /// <summary>The connection's id, unique across nodes.</summary>
    public string ConnectionId { get; }

    /// <summary>The authenticated user the connection belongs to.</summary>
    public string UserId { get; }

    /// <summary>Frames waiting to be written.</summary>
    public int QueuedFrames
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Frames dropped because the queue was full (drop-oldest policy).</summary>
    public long DroppedFrames => Interlocked.Read(ref _dropped);

    /// <summary>The status ChatScale closed the connection with, if it did.</summary>
    public ConnectionCloseStatus? CloseStatus => Volatile.Read(ref _state) == Closing ? _closeStatus : null;

    /// <summary>Completes when the writer has stopped, the close (if any) was sent, and the connection has left <see cref="LocalConnections"/>.</summary>
    public Task Completion => _completion.Task;

    /// <summary>Queues one frame for this connection without waiting.</summary>
    /// <param name="frame">The frame; shared, not copied, so it must not be modified afterwards.</param>
    /// <returns><see langword="false"/> when the connection is closing, or was full and is being closed (close policy).</returns>
    public bool TryEnqueue(ReadOnlyMemory<byte> frame)
    {
        bool schedule;
        var closedAsSlow = false;
        lock (_lock)
        {
            if (_state != Open)
            {
                return false;
            }

            if (!_queue.TryAdd(frame, _capacity))
            {
                if (_policy == SlowConsumerPolicy.Close)
                {
                    CloseAsSlowConsumer();
                    closedAsSlow = true;
                }
                else
                {
                    _queue.ReplaceOldest(frame);
                    Interlocked.Increment(ref _dropped);
                    _metrics.FrameDropped();
                }
            }

            schedule = !_scheduled;
            _scheduled = true;
        }

        if (schedule)
        {
            ThreadPool.UnsafeQueueUserWorkItem(_writer ??= new Writer(this), preferLocal: false);
        }

        if (closedAsSlow)
        {
            _owner.Remove(this);
            return false;
        }

        return true;
    }

    /// <summary>
    /// Stops accepting frames, lets the queue drain for up to <paramref name="drainTimeout"/>, then closes the transport
    /// with <paramref name="status"/>. Safe to call more than once: the first call decides the status.
    /// </summary>
    /// <remarks>
    /// With <see cref="TimeSpan.Zero"/> (a protocol violation) the queued frames are discarded at once, but a frame
    /// already being written may finish within <see cref="ChatScaleOptions.SlowConsumerCloseTimeout"/>, so the client
    /// still reads the close status; only a client that reads nothing for that long is cut off without one. With a
    /// longer drain, a client still not drained when it ends is cut off.
    /// </remarks>
    /// <param name="status">The close status the client sees.</param>
    /// <param name="description">A short reason.</param>
    /// <param name="drainTimeout">How long queued frames may still be written.</param>
    /// <param name="cancellationToken">Stops waiting (the close still proceeds).</param>
    /// <returns>A task that completes when the connection has closed.</returns>
    public Task CloseAsync(ConnectionCloseStatus status, string description, TimeSpan drainTimeout, CancellationToken cancellationToken = default)
    {
        bool began;
        lock (_lock)
        {
            began = BeginClose(status, description);
            if (began && drainTimeout <= TimeSpan.Zero)
            {
                DiscardQueued(_slowConsumerCloseTimeout);
            }
        }

        if (began)
        {
            _owner.Remove(this);
            if (drainTimeout > TimeSpan.Zero && drainTimeout != Timeout.InfiniteTimeSpan)
            {
                _stop.CancelAfter(drainTimeout);
            }

            Schedule();
        }

        return Completion.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Stops the writer at once without a close handshake, for when the transport is already gone (the client
    /// closed or the socket faulted). Queued frames are discarded.
    /// </summary>
    public void Abort()
    {
        bool began;
        lock (_lock)
        {
            began = _state == Open;
            _state = Closing;
            _discardQueued = true;
            _queue.Clear();
        }

        if (began)
        {
            _owner.Remove(this);
        }

        _stop.Cancel();
        Schedule();
    }

    // Under _lock.
    private bool BeginClose(ConnectionCloseStatus status, string description)
    {
        if (_state != Open)
        {
            return false;
        }

        _state = Closing;
        _closeStatus = status;
        _closeDescription = description;
        return true;
    }

    // Under _lock. Drops what is queued, but lets the frame being written finish within the bound: cancelling a
    // WebSocket send aborts the socket, and the client would never see why it was closed.
    private void DiscardQueued(TimeSpan inFlightBound)
    {
        _discardQueued = true;
        _queue.Clear();
        _stop.CancelAfter(inFlightBound);
    }

    // Under _lock, the queue full under the close policy.
    private void CloseAsSlowConsumer()
    {
        CoreLog.SlowConsumerClosing(_logger, ConnectionId, UserId, _capacity);
        BeginClose(ConnectionCloseStatus.PolicyViolation, "Send queue full: the client reads too slowly.");
        DiscardQueued(_slowConsumerCloseTimeout);
        _metrics.SlowConsumerClosed();
    }

    private void Schedule()
    {
        lock (_lock)
        {
            if (_scheduled)
            {
                return;
            }

            _scheduled = true;
        }

        ThreadPool.UnsafeQueueUserWorkItem(_writer ??= new Writer(this), preferLocal: false);
    }

    // The single writer: runs while the connection is scheduled, never twice at once.
    private void Drain()
    {
        while (true)
        {
            int count;
            bool closing;
            var burst = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(MaxBurstFrames);
            lock (_lock)
            {
                count = _stop.IsCancellationRequested || _discardQueued ? 0 : _queue.TakeBurst(burst, MaxBurstBytes);
                closing = _state == Closing;
                if (count == 0 && !closing)
                {
                    _scheduled = false;
                }
            }

            if (count == 0)
            {
                ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(burst);
                if (closing)
                {
                    Finish();
                }

                return;
            }

            ValueTask send;
            try
            {
                send = _transport.SendBatchAsync(burst.AsMemory(0, count), _stop.Token);
            }
            catch (Exception ex)
            {
                ReleaseBurst(burst, count);
                Fail(ex);
                return;
            }

            if (!send.IsCompleted)
            {
                _burst = burst;
                _burstCount = count;
                _pending = send;
                send.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onSendCompleted ??= OnSendCompleted);
                return;
            }

            if (!Completed(send, burst, count))
            {
                return;
            }
        }
    }

    private void OnSendCompleted()
    {
        var send = _pending;
        var burst = _burst!;
        _pending = default;
        _burst = null;
        if (Completed(send, burst, _burstCount))
        {
            Drain();
        }
    }

    private bool Completed(ValueTask send, ReadOnlyMemory<byte>[] burst, int count)
    {
        try
        {
            send.GetAwaiter().GetResult();
            return true;
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Closing or aborted: go on to the close handshake, if one was asked for.
            Finish();
            return false;
        }
        catch (Exception ex)
        {
            Fail(ex);
            return false;
        }
        finally
        {
            ReleaseBurst(burst, count);
        }
    }

    private static void ReleaseBurst(ReadOnlyMemory<byte>[] burst, int count)
    {
        burst.AsSpan(0, count).Clear();
        ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(burst);
    }

    private void Fail(Exception ex)
    {
        CoreLog.SendFailed(_logger, ex, ConnectionId);
        lock (_lock)
        {
            _state = Closing;
            _queue.Clear();
        }

        Finish();
    }

    // Called by the writer once it has stopped for good: leave the engine, then close the transport if asked to.
    private void Finish()
    {
        lock (_lock)
        {
            if (_finished)
            {
                return;
            }

            _finished = true;
            _scheduled = true;
            _queue.Clear();
        }

        _owner.Remove(this);
        if (_closeStatus is { } status)
        {
            _ = CloseTransportAsync(status);
        }
        else
        {
            _completion.TrySetResult();
        }
    }

    private async Task CloseTransportAsync(ConnectionCloseStatus status)
    {
        using var closeTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _transport.CloseAsync(status, _closeDescription, closeTimeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A client that never answers the close handshake or a socket already gone: nothing more to do.
            CoreLog.CloseFailed(_logger, ex, ConnectionId, status);
        }
        finally
        {
            _completion.TrySetResult();
        }
    }

    // The connection's thread-pool work item: queued once per burst, not per frame, and allocated once.
    private sealed class Writer(ClientConnection connection) : IThreadPoolWorkItem
    {
        public void Execute() => connection.Drain();
    }
}
