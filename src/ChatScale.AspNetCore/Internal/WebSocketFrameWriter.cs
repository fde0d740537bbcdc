using System.Buffers;
using System.Runtime.CompilerServices;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The write side of one upgraded connection, owned by ChatScale rather than by <see cref="System.Net.WebSockets.WebSocket"/>:
/// a burst of messages is framed into one buffer and written with one call, so Kestrel flushes once and the socket
/// sees one send for the whole burst (still one WebSocket message per published message). Shares its lock with the
/// <see cref="SerializedWriteStream"/> the receive side's WebSocket writes its control frames through.
/// </summary>
internal sealed class WebSocketFrameWriter(Stream upgraded, SemaphoreSlim writeLock)
{
    /// <summary>Writes each frame as one final text message, all in one write.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(ReadOnlyMemory<ReadOnlyMemory<byte>> frames, CancellationToken cancellationToken)
    {
        var total = 0L;
        for (var i = 0; i < frames.Length; i++)
        {
            var length = frames.Span[i].Length;
            total += WebSocketFrame.HeaderLength(length) + length;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(checked((int)total));
        try
        {
            var written = 0;
            for (var i = 0; i < frames.Length; i++)
            {
                var payload = frames.Span[i].Span;
                written += WebSocketFrame.WriteTextHeader(buffer.AsSpan(written), payload.Length);
                payload.CopyTo(buffer.AsSpan(written));
                written += payload.Length;
            }

            await writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await upgraded.WriteAsync(buffer.AsMemory(0, written), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                writeLock.Release();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
