using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>A signed-in user talking to one node over HTTP and, once <see cref="ConnectAsync"/> ran, a WebSocket.</summary>
public sealed class ChatUser(string name, string token, HttpClient http, ChatNode node) : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private ClientWebSocket? _socket;

    public string Name { get; } = name;

    public string Token { get; } = token;

    public HttpClient Http { get; } = http;

    public ChatNode Node { get; } = node;

    public async Task<Conversation> CreateConversationAsync(params string[] others)
    {
        var response = await Http.PostAsJsonAsync("/api/conversations", new { title = "test", participants = others });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<Conversation>(ChatEvents.Json))!;
    }

    public Task<HttpResponseMessage> PostMessageAsync(string conversationId, string text, string? id = null)
        => Http.PostAsJsonAsync($"/api/conversations/{conversationId}/messages", new { text, id });

    public async Task<ChatMessage> SendAsync(string conversationId, string text)
    {
        var response = await PostMessageAsync(conversationId, text);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<ChatMessage>(ChatEvents.Json))!;
    }

    public async Task<IReadOnlyList<ChatMessage>> HistoryAsync(string conversationId, string query = "")
    {
        var response = await Http.GetAsync($"/api/conversations/{conversationId}/messages{query}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var page = await response.Content.ReadFromJsonAsync<Page>(ChatEvents.Json);
        return page!.Messages;
    }

    /// <summary>Opens this user's WebSocket on its node (token in the query string, as browsers do).</summary>
    public async Task ConnectAsync()
    {
        var socket = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(Timeout);
        await socket.ConnectAsync(Node.WebSocketUri(Token), timeout.Token);
        _socket = socket;
    }

    /// <summary>The next message frame pushed to this user.</summary>
    public async Task<ChatMessage> ReceiveMessageAsync()
    {
        var json = await ReceiveFrameAsync();
        var envelope = JsonSerializer.Deserialize<Frame>(json, ChatEvents.Json)!;
        Assert.True(envelope.Type == "message", $"Unexpected frame {json}");
        return envelope.Message!;
    }

    /// <summary>The next frame pushed to this user, of any type, as JSON text.</summary>
    public async Task<string> ReceiveFrameAsync()
    {
        var socket = _socket ?? throw new InvalidOperationException("Call ConnectAsync first.");
        using var timeout = new CancellationTokenSource(Timeout);
        var buffer = new byte[64 * 1024];
        using var frame = new MemoryStream();
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, timeout.Token);
            Assert.NotEqual(WebSocketMessageType.Close, result.MessageType);
            frame.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                break;
            }
        }

        return Encoding.UTF8.GetString(frame.ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        if (_socket is { State: WebSocketState.Open })
        {
            using var timeout = new CancellationTokenSource(Timeout);
            try
            {
                await _socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            }
            catch (WebSocketException)
            {
                // The node may be stopping too.
            }
        }

        _socket?.Dispose();
        Http.Dispose();
    }

    private sealed record Page(IReadOnlyList<ChatMessage> Messages);

    private sealed record Frame(string Type, ChatMessage? Message);
}
