namespace ChatScale.AspNetCore;

/// <summary>
/// Handles what clients send over their WebSocket. Optional: register one to receive client -> server messages;
/// without one, valid messages are read and discarded.
/// </summary>
/// <remarks>
/// <para>Resolved from the request's services, so a scoped handler lives as long as its connection. Calls for one
/// connection are sequential: the next message is not read until the previous call returns, so a slow handler slows
/// only its own client.</para>
/// <para>Messages are text frames of UTF-8 JSON. ChatScale checks them before calling the handler: invalid UTF-8 or
/// JSON closes the connection with 1007, a binary frame with 1003, a message over
/// <see cref="ChatScaleOptions.MaxIncomingFrameBytes"/> with 1009, a client over its rate limit with 1008. A handler
/// that throws closes its connection with 1011.</para>
/// <para>Keep calls short: while a call runs, the connection's incoming frames (including the pongs that answer
/// keep-alive pings) are not read, so a call longer than <see cref="ChatScaleEndpointOptions.KeepAliveTimeout"/> can
/// get a healthy connection dropped. Hand slow work to <see cref="IBackgroundDispatcher"/>.</para>
/// </remarks>
/// <example>
/// <code>
/// builder.Services.AddSingleton&lt;IClientMessageHandler, TypingIndicatorHandler&gt;();
/// </code>
/// </example>
public interface IClientMessageHandler
{
    /// <summary>
    /// Called once the connection is open: already registered in presence and reachable from every node.
    /// </summary>
    /// <param name="connection">The connection.</param>
    /// <param name="cancellationToken">Signalled when the connection closes.</param>
    /// <returns>A task that completes when the handler is done.</returns>
    ValueTask OnConnectedAsync(ChatScaleConnectionContext connection, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>Handles one message.</summary>
    /// <param name="connection">The connection it came from.</param>
    /// <param name="utf8Json">The message: valid UTF-8 JSON. The memory is reused after the call returns; copy or deserialize it first.</param>
    /// <param name="cancellationToken">Signalled when the connection closes.</param>
    /// <returns>A task that completes when the message is handled.</returns>
    ValueTask OnMessageAsync(ChatScaleConnectionContext connection, ReadOnlyMemory<byte> utf8Json, CancellationToken cancellationToken);

    /// <summary>Called once the connection has closed, on every exit path, after it left presence (so presence counts only the user's other connections).</summary>
    /// <param name="connection">The connection.</param>
    /// <param name="cancellationToken">Bounds the call.</param>
    /// <returns>A task that completes when the handler is done.</returns>
    ValueTask OnDisconnectedAsync(ChatScaleConnectionContext connection, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
