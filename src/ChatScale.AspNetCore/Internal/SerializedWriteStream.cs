using Microsoft.AspNetCore.Http;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The upgraded connection as <see cref="System.Net.WebSockets.WebSocket"/> sees it: reads pass straight through,
/// and every write (a pong, a keep-alive ping, a close frame, each one whole frame per call) takes the connection's
/// write lock, so the control frames of the receive side interleave correctly with the data bursts that
/// <see cref="WebSocketFrameWriter"/> writes to the same stream. On dispose it tells whether a close frame went out:
/// disposing the server's upgraded stream alone does not end a read pending on it, so a WebSocket (<see cref="Socket"/>)
/// that is disposed aborted without having sent a close (a keep-alive timeout) aborts the connection
/// (<paramref name="context"/>), while one that sent its close does not (that would drop the close frame before the
/// client reads it). Fields rather than a callback: one object less per connection.
/// </summary>
internal sealed class SerializedWriteStream(Stream inner, SemaphoreSlim writeLock, HttpContext context) : Stream
{
    private const int OpcodeMask = 0x0F;
    private const int CloseOpcode = 0x08;
    private volatile bool _closeSent;

    /// <summary>The WebSocket created over this stream.</summary>
    public System.Net.WebSockets.WebSocket? Socket { get; set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // The WebSocket writes each frame whole, in one call: its first byte holds the opcode.
        if (!buffer.IsEmpty && (buffer.Span[0] & OpcodeMask) == CloseOpcode)
        {
            _closeSent = true;
        }

        await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            writeLock.Release();
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Synchronous reads are not supported.");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("Synchronous writes are not supported.");

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            if (!_closeSent && Socket?.State == System.Net.WebSockets.WebSocketState.Aborted)
            {
                context.Abort();
            }
        }

        base.Dispose(disposing);
    }
}
