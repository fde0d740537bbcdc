using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>
/// A WebSocket client on a bare <see cref="TcpClient"/> with a tiny receive buffer: it performs the handshake and then
/// reads only when told to, so the server's sends back up into TCP quickly (a client that never reads).
/// </summary>
internal sealed class RawWebSocketClient : IDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;

    private RawWebSocketClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public static async Task<RawWebSocketClient> ConnectAsync(Uri webSocketUri, string user, int receiveBufferBytes = 4096)
    {
        var tcp = new TcpClient { ReceiveBufferSize = receiveBufferBytes };
        using var timeout = new CancellationTokenSource(Ws.Timeout);
        await tcp.ConnectAsync(webSocketUri.Host, webSocketUri.Port, timeout.Token);
        var client = new RawWebSocketClient(tcp);
        var request =
            $"GET {webSocketUri.PathAndQuery} HTTP/1.1\r\n" +
            $"Host: {webSocketUri.Authority}\r\n" +
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
            $"{HeaderAuthHandler.UserHeader}: {HeaderAuthHandler.Encode(user)}\r\n\r\n";
        await client._stream.WriteAsync(Encoding.ASCII.GetBytes(request), timeout.Token);

        // Read the response head one byte at a time, so no frame bytes are consumed with it.
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await client._stream.ReadAsync(one, timeout.Token) == 0)
            {
                throw new IOException($"Connection closed during the handshake: {head}");
            }

            head.Append((char)one[0]);
        }

        if (!head.ToString().StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            client.Dispose();
            throw new IOException($"Handshake refused: {head}");
        }

        return client;
    }

    /// <summary>
    /// Reads frames until a close frame and returns its status code; counts the data frames skipped on the way.
    /// Null when the connection ended without a close frame.
    /// </summary>
    public async Task<(int? CloseStatus, int DataFrames)> ReadUntilCloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var frames = 0;
        try
        {
            while (true)
            {
                var header = await ReadExactlyAsync(2, cts.Token);
                if (header is null)
                {
                    return (null, frames);
                }

                var opcode = header[0] & 0x0F;
                long length = header[1] & 0x7F;
                if (length == 126)
                {
                    var ext = await ReadExactlyAsync(2, cts.Token);
                    length = ext is null ? 0 : BinaryPrimitives.ReadUInt16BigEndian(ext);
                }
                else if (length == 127)
                {
                    var ext = await ReadExactlyAsync(8, cts.Token);
                    length = ext is null ? 0 : (long)BinaryPrimitives.ReadUInt64BigEndian(ext);
                }

                var payload = await ReadExactlyAsync((int)length, cts.Token);
                if (payload is null)
                {
                    return (null, frames);
                }

                if (opcode == 0x8)
                {
                    return (payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : 1005, frames);
                }

                frames++;
            }
        }
        catch (IOException)
        {
            return (null, frames);
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _tcp.Dispose();
    }

    private async Task<byte[]?> ReadExactlyAsync(int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[count];
        var read = 0;
        while (read < count)
        {
            var n = await _stream.ReadAsync(buffer.AsMemory(read), cancellationToken);
            if (n == 0)
            {
                return null;
            }

            read += n;
        }

        return buffer;
    }
}
