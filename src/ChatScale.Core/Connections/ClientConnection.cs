using ChatScale.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ChatScale.Connections;

/// <summary>
/// One client connection on this node: a bounded FIFO send queue with one writer at a time, so frames reach the
/// transport in the order they were queued and a slow client only ever fills its own queue. Created by
/// <see cref="LocalConnections.Add"/>.
/// </summary>
/// <remarks>
/// This type owns the queue, the slow-consumer policy and the close; an internal writer, one per connection, is the
/// single writer that sends. The connection is scheduled, not its frames: the first frame queued on an idle
/// connection puts its writer on the thread pool once; the writer then hands the transport every frame queued at that
/// moment as one burst (<see cref="IConnectionTransport.SendBatchAsync"/>: one flush, one socket write), and keeps
/// going while frames arrive. An idle connection has no task, no waiter and no queue storage.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The stop source is cancelled by Abort/CloseAsync at any time, even after the writer finished, so it is never disposed; it owns no timer once cancelled.")]
public sealed class ClientConnection
{
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
    private ConnectionWriter? _writer;

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
            ThreadPool.UnsafeQueueUserWorkItem(Writer, preferLocal: false);
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

    // Allocated the first time the connection has work, so a connection that never receives holds none.
    private ConnectionWriter Writer => _writer ??= new ConnectionWriter(this, _transport, _stop.Token);

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

        ThreadPool.UnsafeQueueUserWorkItem(Writer, preferLocal: false);
    }

    // Called by the writer, never twice at once: moves the frames queued at this moment into burst, or none when
    // the connection is stopping; when it hands back none and the connection is open, the writer is unscheduled.
    internal int TakeBurst(Span<ReadOnlyMemory<byte>> burst, int maxBytes, out bool closing)
    {
        lock (_lock)
        {
            var count = _stop.IsCancellationRequested || _discardQueued ? 0 : _queue.TakeBurst(burst, maxBytes);
            closing = _state == Closing;
            if (count == 0 && !closing)
            {
                _scheduled = false;
            }

            return count;
        }
    }

    // The writer's send failed: the transport is unusable, so stop for good.
    internal void Fail(Exception ex)
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
    internal void Finish()
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
}
