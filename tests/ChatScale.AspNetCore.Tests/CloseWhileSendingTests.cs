using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;

namespace ChatScale.AspNetCore.Tests;

/// <summary>
/// A close the server decides while it is blocked sending to a client that does not read (its TCP buffers are
/// full) must still reach that client with its code once it reads again, not as an aborted socket.
/// </summary>
public sealed class CloseWhileSendingTests
{
    private const int BigFrameBytes = 64 * 1024;

    [Fact]
    public async Task Oversized_frame_from_a_slow_reader_while_the_server_is_blocked_sending_closes_with_1009()
    {
        await using var node = await TestNode.StartAsync(o => o.MaxIncomingFrameBytes = 1024);
        using var client = await RawClient.ConnectAsync(node.WebSocketUri, "alice");
        await Poll.UntilAsync(() => node.Connections.IsConnected("alice"), "alice is connected");
        var connection = node.Connections.GetConnections("alice")[0];

        // Fill the client's socket buffers and the server's: the writer is blocked inside a send and frames queue up.
        var frame = Encoding.UTF8.GetBytes($"\"{new string('x', BigFrameBytes - 2)}\"");
        await Poll.UntilAsync(
            async () =>
            {
                await node.Broadcaster.PublishAsync(["alice"], frame);
                return connection.QueuedFrames >= 8;
            },
            "the server is blocked sending to alice");

        await client.SendMaskedTextAsync(new byte[4096]);

        // The client reads again: the burst in flight completes, the queued frames are dropped, and 1009 follows.
        var (status, dataFrames) = await client.ReadUntilCloseAsync(TimeSpan.FromSeconds(30));
        Assert.True(status == 1009, $"close status {(status is { } code ? code.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none (aborted)")} after {dataFrames} data frames");
        Assert.True(dataFrames > 0, "the frames already in flight were delivered before the close");
        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "presence is removed");
    }

    /// <summary>A WebSocket client on a bare socket with a small receive buffer, reading only when asked to.</summary>
    private sealed class RawClient : IDisposable
    {
        private readonly TcpClient _tcp;
        private readonly NetworkStream _stream;

        private RawClient(TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
        }

        public static async Task<RawClient> ConnectAsync(Uri uri, string user)
        {
            var tcp = new TcpClient { ReceiveBufferSize = 4096 };
            using var timeout = new CancellationTokenSource(TestClient.Timeout);
            await tcp.ConnectAsync(uri.Host, uri.Port, timeout.Token);
            var client = new RawClient(tcp);
            var request =
                $"GET {uri.PathAndQuery} HTTP/1.1\r\nHost: {uri.Authority}\r\n" +
                "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                $"{TestAuthHandler.UserHeader}: {user}\r\n\r\n";
            await client._stream.WriteAsync(Encoding.ASCII.GetBytes(request), timeout.Token);
            var head = new StringBuilder();
            var one = new byte[1];
            while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
            {
                Assert.True(await client._stream.ReadAsync(one, timeout.Token) == 1, $"closed during the handshake: {head}");
                head.Append((char)one[0]);
            }

            Assert.StartsWith("HTTP/1.1 101", head.ToString(), StringComparison.Ordinal);
            Assert.Contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head.ToString(), StringComparison.OrdinalIgnoreCase);
            return client;
        }

        public async Task SendMaskedTextAsync(byte[] payload)
        {
            var frame = new byte[8 + payload.Length];
            frame[0] = 0x81;
            frame[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
            RandomNumberGenerator.Fill(frame.AsSpan(4, 4));
            for (var i = 0; i < payload.Length; i++)
            {
                frame[8 + i] = (byte)(payload[i] ^ frame[4 + (i % 4)]);
            }

            using var timeout = new CancellationTokenSource(TestClient.Timeout);
            await _stream.WriteAsync(frame, timeout.Token);
        }

        public async Task<(int? Status, int DataFrames)> ReadUntilCloseAsync(TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            var frames = 0;
            try
            {
                while (true)
                {
                    var header = await ReadExactlyAsync(2, cts.Token);
                    long length = header[1] & 0x7F;
                    if (length == 126)
                    {
                        length = BinaryPrimitives.ReadUInt16BigEndian(await ReadExactlyAsync(2, cts.Token));
                    }
                    else if (length == 127)
                    {
                        length = (long)BinaryPrimitives.ReadUInt64BigEndian(await ReadExactlyAsync(8, cts.Token));
                    }

                    var payload = await ReadExactlyAsync((int)length, cts.Token);
                    if ((header[0] & 0x0F) == 0x8)
                    {
                        return (payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : 1005, frames);
                    }

                    frames++;
                }
            }
            catch (Exception ex) when (ex is IOException or EndOfStreamException)
            {
                return (null, frames);
            }
        }

        public void Dispose()
        {
            _stream.Dispose();
            _tcp.Dispose();
        }

        private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
        {
            var buffer = new byte[count];
            await _stream.ReadExactlyAsync(buffer, cancellationToken);
            return buffer;
        }
    }
}
