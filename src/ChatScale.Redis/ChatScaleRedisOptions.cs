using StackExchange.Redis;

namespace ChatScale.Redis;

/// <summary>
/// Options of the Redis backplane and presence, bound from the <c>ChatScale:Redis</c> configuration section and
/// validated at startup.
/// </summary>
/// <example>
/// <code>
/// // appsettings.json: { "ChatScale": { "Redis": { "ConnectionString": "localhost:6379", "KeyPrefix": "myapp" } } }
/// builder.Services.AddChatScale().AddRedis(o =&gt; o.RoutingMode = RedisRoutingMode.Targeted);
/// </code>
/// </example>
public sealed class ChatScaleRedisOptions
{
    /// <summary>The configuration section the options bind from.</summary>
    public const string SectionName = "ChatScale:Redis";

    /// <summary>
    /// A StackExchange.Redis connection string (for example <c>localhost:6379</c> or
    /// <c>node1:6379,node2:6379,password=...</c>). Required unless an <see cref="IConnectionMultiplexer"/> is
    /// registered in the service collection before <c>AddRedis</c>, in which case that shared connection is used and
    /// this is ignored.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// The prefix of every key and channel ChatScale uses, so several applications (or environments) can share one Redis
    /// without crosstalk. Letters, digits, <c>-</c>, <c>_</c> and <c>.</c> only, at most 64 characters. Default
    /// <c>chatscale</c>.
    /// </summary>
    public string KeyPrefix { get; set; } = "chatscale";

    /// <summary>How messages are routed to nodes. Default <see cref="RedisRoutingMode.Targeted"/>.</summary>
    public RedisRoutingMode RoutingMode { get; set; } = RedisRoutingMode.Targeted;

    /// <summary>
    /// Use sharded pub/sub (<c>SPUBLISH</c>/<c>SSUBSCRIBE</c>, Redis 7+) so a Redis Cluster spreads the backplane's
    /// channels over its shards instead of broadcasting every message to every cluster node. Every node of a deployment
    /// must use the same setting. Default <see langword="false"/>.
    /// </summary>
    public bool UseShardedPubSub { get; set; }

    /// <summary>
    /// How often each node looks for nodes whose heartbeat is older than <see cref="ChatScaleOptions.PresenceTimeout"/>
    /// and deletes their presence entries. Lookups already treat such entries as offline, so this only reclaims memory.
    /// Default 30 s.
    /// </summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Whether the backplane listener closes this node's connections with 1012 (Service Restart) once it receives again
    /// after its subscription was lost (Redis restarted, the connection dropped): frames published meanwhile never
    /// reached them, and a closed client knows to reconnect and catch up from history. Turn off only if your clients
    /// detect gaps themselves (sequence numbers). Default <see langword="true"/>.
    /// </summary>
    public bool CloseConnectionsAfterResubscribe { get; set; } = true;

    /// <summary>Options of the Redis Streams background dispatcher.</summary>
    public RedisDispatcherOptions Dispatcher { get; set; } = new();
}
