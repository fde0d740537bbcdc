using System.Text;
using ChatScale.AspNetCore;
using ChatScale.Reliability.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.BadInput;

/// <summary>
/// Malformed client frames end to end. Oversized single frames, binary frames, invalid UTF-8/JSON and floods of
/// messages are covered by ChatScale.AspNetCore.Tests (EndpointTests); this adds fragmentation.
/// </summary>
public sealed class ClientFrameTests(ITestOutputHelper output)
{
    private const int MaxMessage = 64 * 1024;
    private const long FloodBytes = 64L * 1024 * 1024;

    [Fact]
    public async Task A_flood_of_continuation_frames_is_closed_with_1009_once_past_the_limit_without_buffering_the_whole_message()
    {
        await using var node = await StartEchoNodeAsync();
        using var socket = await node.ConnectAsync("flooder");
        var closed = socket.ReceiveCloseAsync();

        GC.Collect();
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var fragment = Encoding.UTF8.GetBytes("[" + new string('1', 4095));
        fragment[^1] = (byte)',';
        long sent = 0;
        try
        {
            // One message that would be 64 MB, in 4 KB continuation frames: the server must stop it at 64 KB.
            while (sent < FloodBytes && !closed.IsCompleted)
            {
                using var timeout = new CancellationTokenSource(Ws.Timeout);
                await socket.SendAsync(fragment, WebSocketMessageType.Text, endOfMessage: false, timeout.Token);
                sent += fragment.Length;
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException)
        {
            // The server closed and dropped the connection while we were still sending.
        }

        var status = await closed;
        var heapGrowth = GC.GetTotalMemory(forceFullCollection: true) - heapBefore;
        output.WriteLine($"limit {MaxMessage / 1024} KB; the client got {status} after sending {sent / 1024} KB of a {FloodBytes / (1024 * 1024)} MB fragmented message; managed heap grew {heapGrowth / 1024} KB");
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, status);
        Assert.True(sent < FloodBytes, "the server let the whole flood in");
        Assert.True(heapGrowth < 16L * 1024 * 1024, $"heap grew {heapGrowth} bytes");
        await Eventually.TrueAsync(() => node.Connections.Count == 0, "the flooder's connection gone");
    }

    [Fact]
    public async Task A_valid_message_split_into_one_byte_fragments_across_multi_byte_characters_is_accepted_whole()
    {
        await using var node = await StartEchoNodeAsync();
        using var socket = await node.ConnectAsync("splitter");
        const string json = "{\"text\":\"héllo 😀 𝄞 €\"}";
        var bytes = Encoding.UTF8.GetBytes(json);
        for (var i = 0; i < bytes.Length; i++)
        {
            await socket.SendAsync(bytes.AsMemory(i, 1), WebSocketMessageType.Text, endOfMessage: i == bytes.Length - 1, CancellationToken.None);
        }

        Assert.Equal(json, await socket.ReceiveTextAsync());
        await socket.CloseQuietlyAsync();
    }

    [Fact]
    public async Task Invalid_UTF8_hidden_across_fragment_boundaries_is_closed_with_1007()
    {
        await using var node = await StartEchoNodeAsync();
        using var socket = await node.ConnectAsync("sneaky");

        // Each fragment alone could be the start or end of a valid character; together they are a UTF-16 surrogate
        // encoded in UTF-8 (ED A0 80), which is invalid.
        byte[][] fragments = [[(byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'"', 0xED], [0xA0], [0x80, (byte)'"', (byte)'}']];
        for (var i = 0; i < fragments.Length; i++)
        {
            await socket.SendAsync(fragments[i], WebSocketMessageType.Text, endOfMessage: i == fragments.Length - 1, CancellationToken.None);
        }

        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, await socket.ReceiveCloseAsync());
    }

    [Fact]
    public async Task A_fragmented_binary_message_is_closed_with_1003()
    {
        await using var node = await StartEchoNodeAsync();
        using var socket = await node.ConnectAsync("mixer");
        await socket.SendAsync("[1,"u8.ToArray(), WebSocketMessageType.Binary, endOfMessage: false, CancellationToken.None);
        await socket.SendAsync("2]"u8.ToArray(), WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None);
        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, await socket.ReceiveCloseAsync());
    }

    private static Task<ChatHost> StartEchoNodeAsync() => ChatHost.StartAsync(
        chatScale: o => o.MaxIncomingFrameBytes = MaxMessage,
        configure: b => b.Services.AddSingleton<IClientMessageHandler, EchoHandler>());
}
