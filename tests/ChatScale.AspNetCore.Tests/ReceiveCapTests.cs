using System.Net.Sockets;
using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.AspNetCore.Tests;

/// <summary>
/// The incoming cap is exact at a size the array pool would round up (5,000 bytes; the pool hands out 8,192), and a
/// request that is not a version-13 WebSocket handshake is told which version the server speaks.
/// </summary>
public sealed class ReceiveCapTests
{
    private const int Cap = 5000;

    private static async Task SendFragmentsAsync(ClientWebSocket client, string message, int fragment)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        using var timeout = new CancellationTokenSource(TestClient.Timeout);
        for (var offset = 0; offset < bytes.Length; offset += fragment)
        {
            var count = Math.Min(fragment, bytes.Length - offset);
            await client.SendAsync(bytes.AsMemory(offset, count), WebSocketMessageType.Text, offset + count == bytes.Length, timeout.Token);
        }
    }

    private static string JsonStringOfBytes(int bytes) => $"\"{new string('x', bytes - 2)}\"";

    [Fact]
    public async Task A_message_of_exactly_the_cap_in_fragments_is_accepted()
    {
        var handler = new EchoHandler();
        await using var node = await TestNode.StartAsync(o => o.MaxIncomingFrameBytes = Cap, b => b.Services.AddSingleton<IClientMessageHandler>(handler));
        using var client = await node.ConnectAsync("alice");
        var atCap = JsonStringOfBytes(Cap);

        await SendFragmentsAsync(client, atCap, 1234);

        Assert.Equal($"{{\"echo\":{atCap}}}", await client.ReceiveTextAsync());
    }

    [Fact]
    public async Task One_byte_over_the_cap_closes_with_1009_although_the_receive_buffer_is_larger()
    {
        var handler = new EchoHandler();
        await using var node = await TestNode.StartAsync(o => o.MaxIncomingFrameBytes = Cap, b => b.Services.AddSingleton<IClientMessageHandler>(handler));
        using var client = await node.ConnectAsync("alice");

        await SendFragmentsAsync(client, JsonStringOfBytes(Cap + 1), 1234);

        Assert.Equal(WebSocketCloseStatus.MessageTooBig, await client.ReceiveCloseAsync());
        Assert.Equal($"Messages are limited to {Cap} bytes.", client.CloseStatusDescription);
        Assert.DoesNotContain(handler.Events, e => e.StartsWith("message", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("8")]
    [InlineData(null)]
    public async Task A_handshake_without_version_13_gets_400_naming_version_13(string? version)
    {
        await using var node = await TestNode.StartAsync();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(node.BaseAddress.Host, node.BaseAddress.Port);
        var stream = tcp.GetStream();
        var request = "GET /ws HTTP/1.1\r\n" +
            $"Host: {node.BaseAddress.Authority}\r\n" +
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
            (version is null ? string.Empty : $"Sec-WebSocket-Version: {version}\r\n") +
            $"{TestAuthHandler.UserHeader}: alice\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));

        var head = await ReadHeadAsync(stream);

        Assert.StartsWith("HTTP/1.1 400", head, StringComparison.Ordinal);
        Assert.Contains("\r\nSec-WebSocket-Version: 13\r\n", head, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        using var timeout = new CancellationTokenSource(TestClient.Timeout);
        var head = new StringBuilder();
        var buffer = new byte[1024];
        while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, timeout.Token);
            Assert.True(read > 0, $"connection closed after: {head}");
            head.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        return head.ToString();
    }
}
