using System.Net.WebSockets;
using ChatScale.Connections;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// <see cref="IConnectionTransport"/> over a server <see cref="WebSocket"/>. The connection is created, and can be
/// queued to, before the upgrade completes (so no message published after the client sees the handshake is lost);
/// frames queued before then are written once <see cref="Attach"/> hands over the accepted socket.
/// </summary>
internal sealed class WebSocketTransport : IConnectionTransport
{
    private readonly TaskCompletionSource<WebSocket> _socket = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Attach(WebSocket socket) => _socket.TrySetResult(socket);

    public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        var pending = _socket.Task;
        return pending.IsCompletedSuccessfully
            ? pending.Result.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, cancellationToken)
            : SendAfterAcceptAsync(frame, cancellationToken);
    }

    public async ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken)
    {
        if (!_socket.Task.IsCompletedSuccessfully)
        {
            // Never upgraded: the HTTP response already told the client why.
            return;
        }

        var socket = _socket.Task.Result;
        if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            await socket.CloseOutputAsync((WebSocketCloseStatus)status, description, cancellationToken).ConfigureAwait(false);
        }
    }

    private async ValueTask SendAfterAcceptAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        var socket = await _socket.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        await socket.SendAsync(frame, WebSocketMessageType.Text, endOfMessage: true, cancellationToken).ConfigureAwait(false);
    }
}
