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

    /// <summary>
    /// How many WebSocket connections one user may hold on this node at once; one more is refused with 429 Too Many
    /// Requests (and <c>Retry-After</c>) before anything is written to presence, so the user's open connections are
    /// not disturbed. 0 disables the cap. Default 16 (a user with many tabs and devices stays well under it).
    /// </summary>
    /// <remarks>The count is per node: a user whose connections land on N nodes may hold up to N times this.</remarks>
    public int MaxConnectionsPerUser { get; set; } = 16;

    /// <summary>
    /// How many WebSocket connections this node holds at once; one more is refused with 503 Service Unavailable and
    /// <c>Retry-After</c> (and <c>Connection: close</c>), so the node keeps serving the connections it has instead of
    /// running out of file descriptors. Null (the default) derives it from the process's open-file limit
    /// (<c>ulimit -n</c>, read at start; unbounded where the OS reports none, e.g. Windows): of the descriptors not
    /// open at start (a .NET web app holds ~220 then, one per loaded assembly) minus a margin for later growth (128
    /// plus half of those open at start), two thirds; with <c>ulimit -n 1024</c> about 350. The cap is logged at
    /// start (event 3014).
    /// </summary>
    /// <remarks>
    /// Each open connection costs memory as well (about 44 KB measured with the sample app), so on a host with a high
    /// file limit set this from memory too. When the host leaves Kestrel's <c>Limits.MaxConcurrentConnections</c>
    /// unset, <c>AddChatScale</c> sets it to the other third: those are connections not (yet) upgraded;
    /// upgraded ones count against Kestrel's <c>MaxConcurrentUpgradedConnections</c> (left unset, since this cap
    /// already bounds them).
    /// </remarks>
    public int? MaxConnections { get; set; }

    /// <summary>
    /// How many WebSocket handshakes (presence registration, then upgrade) may be in progress at once on this node;
    /// more wait for a slot, and one that waits longer than 5 s is refused with 503 and <c>Retry-After</c>. This keeps
    /// a reconnect storm from queueing thousands of presence writes on the shared Redis connection ahead of the node's
    /// heartbeat and the dispatcher's lease renewals. 0 disables the limit. Default 64.
    /// </summary>
    public int MaxConcurrentUpgrades { get; set; } = 64;

    /// <summary>
    /// Whether a connection is closed with 1008 (policy violation, reason "Token expired.") when the authentication
    /// that opened it expires: the ticket's <c>ExpiresUtc</c> (JWT bearer and cookie authentication set it), else
    /// the user's <c>exp</c> claim. A request whose authentication has already expired is refused with 401. It costs
    /// one timer per connection that has an expiry and nothing per message. Default true; the client reconnects with
    /// a fresh token.
    /// </summary>
    public bool CloseOnTokenExpiry { get; set; } = true;
}
