using System.Threading.Channels;
using ChatScale.Diagnostics;
using Microsoft.Extensions.Logging;

namespace ChatScale.Connections;

/// <summary>
/// One client connection on this node: a bounded FIFO send queue drained by exactly one writer loop, so frames reach
/// the transport in the order they were queued and a slow client only ever fills its own queue. Created by
/// <see cref="LocalConnections.Add"/>.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The stop source is cancelled by Abort/CloseAsync at any time, even after the loop ended, so it is never disposed; it owns no timer once cancelled.")]
public sealed class ClientConnection
{
    private const int Open = 0;
    private const int Closing = 1;

    private readonly Channel<ReadOnlyMemory<byte>> _queue;
    private readonly IConnectionTransport _transport;
    private readonly LocalConnections _owner;
    private readonly ChatScaleMetrics _metrics;
    private readonly ILogger _logger;
    private readonly SlowConsumerPolicy _policy;
    private readonly int _capacity;
    private readonly TimeSpan _slowConsumerCloseTimeout;
    private readonly CancellationTokenSource _stop = new();
    private int _state;
    private volatile bool _discardQueued;
    private long _dropped;
    private ConnectionCloseStatus? _closeStatus;
    private string _closeDescription = string.Empty;

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
        var channelOptions = new BoundedChannelOptions(_capacity)
        {
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
            FullMode = _policy == SlowConsumerPolicy.DropOldest ? BoundedChannelFullMode.DropOldest : BoundedChannelFullMode.Wait,
        };
        _queue = _policy == SlowConsumerPolicy.DropOldest
            ? Channel.CreateBounded<ReadOnlyMemory<byte>>(channelOptions, OnFrameDropped)
            : Channel.CreateBounded<ReadOnlyMemory<byte>>(channelOptions);
        Completion = Task.CompletedTask;
    }

    /// <summary>The connection's id, unique across nodes.</summary>
    public string ConnectionId { get; }

    /// <summary>The authenticated user the connection belongs to.</summary>
    public string UserId { get; }

    /// <summary>Frames waiting to be written.</summary>
    public int QueuedFrames => _queue.Reader.Count;

    /// <summary>Frames dropped because the queue was full (drop-oldest policy).</summary>
    public long DroppedFrames => Interlocked.Read(ref _dropped);

    /// <summary>The status ChatScale closed the connection with, if it did.</summary>
    public ConnectionCloseStatus? CloseStatus => Volatile.Read(ref _state) == Closing ? _closeStatus : null;

    /// <summary>Completes when the writer loop has stopped and the connection has left <see cref="LocalConnections"/>.</summary>
    public Task Completion { get; private set; }

    /// <summary>Queues one frame for this connection without waiting.</summary>
    /// <param name="frame">The frame; shared, not copied, so it must not be modified afterwards.</param>
    /// <returns><see langword="false"/> when the connection is closing, or was full and is being closed (close policy).</returns>
    public bool TryEnqueue(ReadOnlyMemory<byte> frame)
    {
        if (_queue.Writer.TryWrite(frame))
        {
            return true;
        }

        // TryWrite fails only when the channel is completed (we are closing) or full under the Close policy.
        if (_policy == SlowConsumerPolicy.Close && Volatile.Read(ref _state) == Open)
        {
            CoreLog.SlowConsumerClosing(_logger, ConnectionId, UserId, _capacity);
            if (BeginClose(ConnectionCloseStatus.PolicyViolation, "Send queue full: the client reads too slowly.", drain: false))
            {
                _metrics.SlowConsumerClosed();
            }
        }

        return false;
    }

    /// <summary>
    /// Stops accepting frames, lets the queue drain for up to <paramref name="drainTimeout"/>, then closes the transport
    /// with <paramref name="status"/>. Safe to call more than once: the first call decides the status.
    /// </summary>
    /// <param name="status">The close status the client sees.</param>
    /// <param name="description">A short reason.</param>
    /// <param name="drainTimeout">How long queued frames may still be written.</param>
    /// <param name="cancellationToken">Stops waiting (the close still proceeds).</param>
    /// <returns>A task that completes when the connection has closed.</returns>
    public Task CloseAsync(ConnectionCloseStatus status, string description, TimeSpan drainTimeout, CancellationToken cancellationToken = default)
    {
        if (BeginClose(status, description, drain: true) && drainTimeout != Timeout.InfiniteTimeSpan)
        {
            _stop.CancelAfter(drainTimeout);
        }

        return Completion.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Stops the writer loop at once without a close handshake, for when the transport is already gone (the client
    /// closed or the socket faulted). Queued frames are discarded.
    /// </summary>
    public void Abort()
    {
        if (Interlocked.CompareExchange(ref _state, Closing, Open) == Open)
        {
            _queue.Writer.TryComplete();
            _owner.Remove(this);
        }

        _stop.Cancel();
    }

    internal void Start() => Completion = WriteLoopAsync();

    private bool BeginClose(ConnectionCloseStatus status, string description, bool drain)
    {
        if (Interlocked.CompareExchange(ref _state, Closing, Open) != Open)
        {
            return false;
        }

        _closeStatus = status;
        _closeDescription = description;
        _queue.Writer.TryComplete();
        _owner.Remove(this);
        if (!drain)
        {
            // Drop what is queued, but do not cancel the frame being written: cancelling a WebSocket send aborts the
            // socket, and the client would never see why it was closed. Let that frame finish within the timeout,
            // then the close frame follows; past the timeout the send is cancelled (and the socket aborted).
            _discardQueued = true;
            _stop.CancelAfter(_slowConsumerCloseTimeout);
        }

        return true;
    }

    private async Task WriteLoopAsync()
    {
        var reader = _queue.Reader;
        var token = _stop.Token;
        try
        {
            // WaitToReadAsync gets no token on purpose: with one, the channel allocates a waiter per wait; without,
            // it reuses a single pooled one. Every way of stopping completes the channel, which ends the wait, and
            // the token stops the loop between frames and inside a send.
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (!token.IsCancellationRequested && !_discardQueued && reader.TryRead(out var frame))
                {
                    await _transport.SendAsync(frame, token).ConfigureAwait(false);
                }

                if (token.IsCancellationRequested || _discardQueued)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Closing or aborted: fall through to the close handshake, if one was asked for.
        }
        catch (Exception ex)
        {
            CoreLog.SendFailed(_logger, ex, ConnectionId);
            Interlocked.CompareExchange(ref _state, Closing, Open);
            _queue.Writer.TryComplete();
        }
        finally
        {
            _owner.Remove(this);
        }

        if (_closeStatus is { } status)
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
        }
    }

    private void OnFrameDropped(ReadOnlyMemory<byte> frame)
    {
        Interlocked.Increment(ref _dropped);
        _metrics.FrameDropped();
    }
}
