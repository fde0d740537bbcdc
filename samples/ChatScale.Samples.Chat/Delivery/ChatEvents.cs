using System.Text.Json;
using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Delivery;

/// <summary>The frames the server sends over the WebSocket: UTF-8 JSON, serialized once per message.</summary>
public static class ChatEvents
{
    /// <summary>The JSON settings of the HTTP API and of WebSocket frames (camelCase), so a message looks the same on both.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary><c>{"type":"message","message":{...}}</c> as UTF-8 bytes.</summary>
    /// <param name="message">The message.</param>
    /// <returns>The frame.</returns>
    public static byte[] MessageFrame(ChatMessage message) => JsonSerializer.SerializeToUtf8Bytes(new MessageEvent("message", message), Json);

    /// <summary><c>{"type":"channel","post":{...}}</c> as UTF-8 bytes: a post to a public channel.</summary>
    /// <param name="post">The post.</param>
    /// <returns>The frame.</returns>
    public static byte[] ChannelFrame(Api.ChannelPost post) => JsonSerializer.SerializeToUtf8Bytes(new ChannelEvent("channel", post), Json);

    private sealed record MessageEvent(string Type, ChatMessage Message);

    private sealed record ChannelEvent(string Type, Api.ChannelPost Post);
}
