namespace ChatScale.Connections;

/// <summary>
/// The transport under one client connection (a WebSocket in ASP.NET Core, a fake in tests). ChatScale calls
/// <see cref="SendAsync"/>, <see cref="SendBatchAsync"/> and <see cref="CloseAsync"/> from one writer at a time per
/// connection, never concurrently, so implementations need no locking for them.
/// </summary>
public interface IConnectionTransport
{
    /// <summary>Writes one whole frame. Called by the connection's single writer only.</summary>
    /// <param name="frame">The frame; shared with other connections, so it must not be modified.</param>
    /// <param name="cancellationToken">Signalled when the connection is being torn down.</param>
    /// <returns>A task that completes when the frame has been written.</returns>
    ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a burst of frames in order, each one whole message, and flushes once at the end, so a burst costs one
    /// write to the socket. Called by the connection's single writer only, with every frame queued at that moment
    /// (up to a bounded size). The default implementation sends the frames one by one with <see cref="SendAsync"/>.
    /// It may be called on the thread that delivered the frames (the backplane listener, for a batch), so it must not
    /// block: return a pending task when the bytes cannot be taken at once.
    /// </summary>
    /// <param name="frames">The frames, oldest first; each is shared with other connections and must not be modified,
    /// and the list itself is only valid until the returned task completes.</param>
    /// <param name="cancellationToken">Signalled when the connection is being torn down.</param>
    /// <returns>A task that completes when every frame has been written.</returns>
    ValueTask SendBatchAsync(ReadOnlyMemory<ReadOnlyMemory<byte>> frames, CancellationToken cancellationToken)
        => frames.Length == 1 ? SendAsync(frames.Span[0], cancellationToken) : SendEachAsync(this, frames, cancellationToken);

    /// <summary>Closes the connection with a status the client can read. Called at most once.</summary>
    /// <param name="status">The close status.</param>
    /// <param name="description">A short reason for the client.</param>
    /// <param name="cancellationToken">Bounds how long to wait for the close handshake.</param>
    /// <returns>A task that completes when the close has been sent.</returns>
    ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken);

    private static async ValueTask SendEachAsync(IConnectionTransport transport, ReadOnlyMemory<ReadOnlyMemory<byte>> frames, CancellationToken cancellationToken)
    {
        for (var i = 0; i < frames.Length; i++)
        {
            await transport.SendAsync(frames.Span[i], cancellationToken).ConfigureAwait(false);
        }
    }
}
