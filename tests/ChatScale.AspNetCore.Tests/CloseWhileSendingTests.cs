using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using ChatScale.AspNetCore.Internal;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.AspNetCore.Tests;

/// <summary>
/// A close the server decides while it is blocked sending to a client that does not read (its TCP buffers are
/// full) must still reach that client with its code once it reads again, not as an aborted socket: every code the
/// server decides (1009, 1003, 1007, 1008 for violations, 1001 for a graceful stop).
/// </summary>
public sealed class CloseWhileSendingTests
{
    private const int BigFrameBytes = 64 * 1024;

    /// <summary>What the client does (or the server decides) while the server is blocked sending to it.</summary>
    public enum Cause
    {
        /// <summary>A text message over <c>MaxIncomingFrameBytes</c>: 1009.</summary>
        OversizedMessage,

        /// <summary>A binary frame: 1003.</summary>
        BinaryFrame,

        /// <summary>A text frame that is not UTF-8 JSON: 1007.</summary>
        InvalidJson,

        /// <summary>A second message past a burst of one: 1008.</summary>
        RateLimit,

        /// <summary>The host stops gracefully: 1001.</summary>
        Shutdown,
    }

    [Theory]
    [InlineData(Cause.OversizedMessage, 1009)]
    [InlineData(Cause.BinaryFrame, 1003)]
    [InlineData(Cause.InvalidJson, 1007)]
    [InlineData(Cause.RateLimit, 1008)]
    [InlineData(Cause.Shutdown, 1001)]
    public async Task A_close_the_server_decides_while_it_is_blocked_sending_reaches_the_client_with_its_code(Cause cause, int expected)
    {
        await using var node = await TestNode.StartAsync(
            o => o.MaxIncomingFrameBytes = 1024,
            b => b.Services.Configure<ChatScaleEndpointOptions>(o =>
            {
                o.MessageBurst = 1;
                o.MessagesPerSecond = 0.01;
            }));
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

        Task? stop = null;
        switch (cause)
        {
            case Cause.OversizedMessage:
                await client.SendMaskedAsync(0x1, new byte[4096]);
                break;
            case Cause.BinaryFrame:
                await client.SendMaskedAsync(0x2, "{}"u8.ToArray());
                break;
            case Cause.InvalidJson:
                await client.SendMaskedAsync(0x1, "not json"u8.ToArray());
                break;
            case Cause.RateLimit:
                await client.SendMaskedAsync(0x1, "{}"u8.ToArray());
                await client.SendMaskedAsync(0x1, "{}"u8.ToArray());
                break;
            case Cause.Shutdown:
                stop = node.StopAsync();
                await Poll.UntilAsync(() => node.Services.GetRequiredService<ChatScaleNodeState>().IsStopping, "the node stopped accepting");
                break;
        }

        // The client reads again: the burst in flight completes, the queued frames are dropped (a violation) or drained
        // (a shutdown), and the close follows with the server's code.
        var (status, dataFrames) = await client.ReadUntilCloseAsync(TimeSpan.FromSeconds(30));
        Assert.True(status == expected, $"close status {(status is { } code ? code.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none (aborted)")} after {dataFrames} data frames, expected {expected}");
        Assert.True(dataFrames > 0, "the frames already in flight were delivered before the close");
        if (stop is not null)
        {
            await stop;
        }
        else
        {
            await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "presence is removed");
        }
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

        public async Task SendMaskedAsync(byte opcode, byte[] payload)
        {
            var lengthBytes = payload.Length < 126 ? 0 : 2;
            var frame = new byte[2 + lengthBytes + 4 + payload.Length];
            frame[0] = (byte)(0x80 | opcode);
            if (lengthBytes == 0)
            {
                frame[1] = (byte)(0x80 | payload.Length);
            }
            else
            {
                frame[1] = 0x80 | 126;
                BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), (ushort)payload.Length);
            }

            var mask = 2 + lengthBytes;
            RandomNumberGenerator.Fill(frame.AsSpan(mask, 4));
            for (var i = 0; i < payload.Length; i++)
            {
                frame[mask + 4 + i] = (byte)(payload[i] ^ frame[mask + (i % 4)]);
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
                        // Answer the close as a browser does, so the server's close handshake completes at once.
                        await SendMaskedAsync(0x8, payload.Length >= 2 ? payload[..2] : []);
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
