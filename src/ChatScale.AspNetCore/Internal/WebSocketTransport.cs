using System.Net.WebSockets;
using ChatScale.Connections;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// <see cref="IConnectionTransport"/> over an accepted WebSocket. The connection is created, and can be queued to,
/// before the upgrade completes (so no message published after the client sees the handshake is lost); frames queued
/// before then are written once <see cref="Attach"/> hands over the accepted socket. A burst goes out through the
/// <see cref="WebSocketFrameWriter"/> as one write; without one (HTTP/2), frame by frame through the socket.
/// </summary>
internal sealed class WebSocketTransport : IConnectionTransport
{
    // Until the socket is attached; then dropped, so a connection does not keep it for its whole life.
    private TaskCompletionSource? _attaching = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebSocket? _socket;
    private WebSocketFrameWriter? _writer;

    private bool IsAttached => Volatile.Read(ref _attaching) is null;

    public void Attach(WebSocket socket, WebSocketFrameWriter? writer)
    {
        _socket = socket;
        _writer = writer;
        Interlocked.Exchange(ref _attaching, null)?.TrySetResult();
    }

    /// <summary>
    /// The upgrade will not happen (refused, failed, or the client left during it): whatever waits for the socket goes
    /// on and finds none.
    /// </summary>
    public void Abandon() => Interlocked.Exchange(ref _attaching, null)?.TrySetResult();

    public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        if (!IsAttached)
        {
            return SendAfterAcceptAsync(frame, cancellationToken);
        }

        if (_writer is { } writer)
        {
            return writer.WriteAsync(new ReadOnlyMemory<ReadOnlyMemory<byte>>([frame]), cancellationToken);
        }

        return _socket is { } socket
            ? socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, cancellationToken)
            : ValueTask.FromException(NeverUpgraded());
    }

    public ValueTask SendBatchAsync(ReadOnlyMemory<ReadOnlyMemory<byte>> frames, CancellationToken cancellationToken)
    {
        if (IsAttached && _writer is { } writer)
        {
            return writer.WriteAsync(frames, cancellationToken);
        }

        return SendEachAsync(frames, cancellationToken);
    }

    public async ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken)
    {
        if (!IsAttached)
        {
            // Closed while the upgrade is under way (the client may already have its 101): wait for the socket, or for
            // the endpoint to give the upgrade up, so that the client gets this close frame and not an aborted socket.
            await WhenAttached().WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (_socket is not { } socket)
        {
            // Never upgraded: the HTTP response already told the client why.
            return;
        }

        if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            await socket.CloseOutputAsync((WebSocketCloseStatus)status, description, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask SendEachAsync(ReadOnlyMemory<ReadOnlyMemory<byte>> frames, CancellationToken cancellationToken)
    {
        await WhenAttached().WaitAsync(cancellationToken).ConfigureAwait(false);
        if (_writer is { } writer)
        {
            await writer.WriteAsync(frames, cancellationToken).ConfigureAwait(false);
            return;
        }

        if (_socket is null)
        {
            throw NeverUpgraded();
        }

        for (var i = 0; i < frames.Length; i++)
        {
            await _socket.SendAsync(frames.Span[i], WebSocketMessageType.Text, endOfMessage: true, cancellationToken).ConfigureAwait(false);
        }
    }

    private static WebSocketException NeverUpgraded() => new(WebSocketError.InvalidState, "The connection was never upgraded to a WebSocket.");

    private Task WhenAttached() => Volatile.Read(ref _attaching)?.Task ?? Task.CompletedTask;

    private async ValueTask SendAfterAcceptAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        await WhenAttached().WaitAsync(cancellationToken).ConfigureAwait(false);
        await SendAsync(frame, cancellationToken).ConfigureAwait(false);
    }
}
