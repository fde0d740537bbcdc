using ChatScale.Reliability.Tests.Infrastructure;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>The Origin allow-list stops cross-site WebSocket hijacking (403 before the upgrade).</summary>
public sealed class OriginTests
{
    public static TheoryData<string, bool> Origins => new()
    {
        { "https://chat.example.com", true },
        { "https://CHAT.Example.com", true },
        { "https://chat.example.com:443", true },
        { "https://evil.example.net", false },
        { "https://chat.example.com.evil.net", false },
        { "https://evilchat.example.com", false },
        { "http://chat.example.com", false },
        { "https://chat.example.com:8443", false },
        { "null", false },
        { "file://", false },
        { "https://chat.example.com@evil.net", false },
    };

    [Theory]
    [MemberData(nameof(Origins))]
    public async Task Only_an_allowed_origin_is_upgraded(string origin, bool allowed)
    {
        await using var node = await ChatHost.StartAsync(endpoint: o => o.AllowedOrigins.Add("https://chat.example.com"));
        if (allowed)
        {
            using var socket = await node.ConnectAsync("alice", origin);
            Assert.Equal(WebSocketState.Open, socket.State);
            await socket.CloseQuietlyAsync();
        }
        else
        {
            Assert.Equal(403, await Ws.ConnectExpectingStatusAsync(node.WebSocketUri, "alice", origin));
        }
    }
}
