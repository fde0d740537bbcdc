namespace ChatScale.Connections;

/// <summary>
/// The transport under one client connection (a WebSocket in ASP.NET Core, a fake in tests). ChatScale calls
/// <see cref="SendAsync"/> from exactly one writer loop per connection, never concurrently, so implementations need
/// no locking for sends.
/// </summary>
public interface IConnectionTransport
{
    /// <summary>Writes one whole frame. Called by the connection's single writer loop only.</summary>
    /// <param name="frame">The frame; shared with other connections, so it must not be modified.</param>
    /// <param name="cancellationToken">Signalled when the connection is being torn down.</param>
    /// <returns>A task that completes when the frame has been written.</returns>
    ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken);

    /// <summary>Closes the connection with a status the client can read. Called at most once.</summary>
    /// <param name="status">The close status.</param>
    /// <param name="description">A short reason for the client.</param>
    /// <param name="cancellationToken">Bounds how long to wait for the close handshake.</param>
    /// <returns>A task that completes when the close has been sent.</returns>
    ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken);
}
