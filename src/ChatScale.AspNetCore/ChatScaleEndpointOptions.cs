namespace ChatScale.AspNetCore;

/// <summary>
/// Options of the WebSocket endpoint mapped by <c>MapChatScale</c>, bound from the <c>ChatScale:Endpoint</c>
/// configuration section and validated at startup. The largest incoming frame is
/// <see cref="ChatScaleOptions.MaxIncomingFrameBytes"/>.
/// </summary>
/// <example>
/// <code>
/// "ChatScale": {
///   "Endpoint": {
///     "AllowedOrigins": [ "https://chat.example.com" ],
///     "MessagesPerSecond": 10,
///     "MessageBurst": 20
///   }
/// }
/// </code>
/// </example>
public sealed class ChatScaleEndpointOptions
{
    /// <summary>The configuration section the options bind from.</summary>
    public const string SectionName = ChatScaleOptions.SectionName + ":Endpoint";

    /// <summary>
    /// The browser origins allowed to open a WebSocket (for example <c>https://chat.example.com</c>), compared on
    /// scheme, host and port, ignoring case; <c>*</c> allows any origin.
    /// </summary>
    /// <remarks>
    /// When empty (the default), only same-host origins are allowed: the host and port of the <c>Origin</c> header
    /// must equal the request's <c>Host</c> header. A request with no <c>Origin</c> header is always allowed:
    /// browsers always send one on a WebSocket handshake, so its absence means a non-browser client, which cross-site
    /// WebSocket hijacking cannot involve. A rejected origin gets 403 and no connection.
    /// </remarks>
    public IList<string> AllowedOrigins { get; } = new List<string>();

    /// <summary>
    /// How many messages per second a connection may send on average (a token bucket refilled at this rate);
    /// a client that goes faster is closed with 1008 (policy violation). 0 disables the limit. Default 20.
    /// </summary>
    public double MessagesPerSecond { get; set; } = 20;

    /// <summary>How many messages a connection may send in a burst above <see cref="MessagesPerSecond"/>. Default 40.</summary>
    public int MessageBurst { get; set; } = 40;

    /// <summary>How often the server pings an idle connection, keeping proxies from closing it. <see cref="TimeSpan.Zero"/> disables pings. Default 15 s.</summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long the server waits for the pong answering a ping before it drops the connection as dead.
    /// <see cref="TimeSpan.Zero"/> disables the check. Default 15 s.
    /// </summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(15);
}
