using System.Diagnostics.Metrics;
using ChatScale.Backplane;
using ChatScale.Redis.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis;

/// <summary>
/// Publishes messages to users on any node through Redis pub/sub.
/// </summary>
/// <remarks>
/// <para>In <see cref="RedisRoutingMode.Targeted"/> mode (the default) a publish costs one presence lookup plus one
/// PUBLISH per node that hosts at least one recipient, each envelope carrying only that node's recipients: a message to
/// 50 users spread over 2 nodes is 1 lookup and 2 PUBLISH. In <see cref="RedisRoutingMode.Broadcast"/> mode it is one
/// PUBLISH on the all-nodes channel.</para>
/// <para>Messages for this node's own users also go through Redis, never by a local shortcut: a shortcut would let them
/// overtake messages other nodes published earlier to the same conversation. One node's publishes travel in order on
/// its single Redis connection, and each node's listener handles a channel's messages one at a time.</para>
/// <para><b>Dead routes.</b> Each PUBLISH answers how many subscribers received it. A node channel with none (the node's
/// listener is not subscribed, or the node is gone) is not counted in <see cref="PublishResult.TargetedNodes"/>, and
/// its users are reported in <see cref="PublishResult.OfflineUsers"/> unless another node hosting them was reached, so
/// they get a push instead of being believed delivered.</para>
/// <para>When Redis is unreachable, publishing throws <see cref="BackplaneUnavailableException"/> (the default
/// connection created by <c>AddRedis</c> fails fast rather than queueing while disconnected).</para>
/// </remarks>
public sealed class RedisMessageBroadcaster : IMessageBroadcaster, IDisposable
{
    private readonly IConnectionMultiplexer _multiplexer;
    private readonly IConnectionRegistry _registry;
    private readonly RedisKeyspace _keys;
    private readonly RedisRoutingMode _mode;
    private readonly string _nodeId;
    private readonly int _maxPayloadBytes;
    private readonly RedisMetrics _metrics;
    private readonly ILogger _logger;

    /// <summary>Creates the broadcaster.</summary>
    /// <param name="multiplexer">The process's shared Redis connection.</param>
    /// <param name="registry">Presence, used by targeted routing to find the recipients' nodes.</param>
    /// <param name="options">The node options (node id, payload limit).</param>
    /// <param name="redisOptions">The Redis options (key prefix, routing mode, sharded pub/sub).</param>
    /// <param name="loggerFactory">Logging; optional.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    public RedisMessageBroadcaster(
        IConnectionMultiplexer multiplexer,
        IConnectionRegistry registry,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(multiplexer);
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(redisOptions);
        _multiplexer = multiplexer;
        _registry = registry;
        var redis = redisOptions.Value;
        _keys = new RedisKeyspace(redis.KeyPrefix, redis.UseShardedPubSub);
        _mode = redis.RoutingMode;
        _nodeId = options.Value.NodeId;
        _maxPayloadBytes = options.Value.MaxPayloadBytes;
        _metrics = new RedisMetrics(meterFactory);
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisMessageBroadcaster>() ?? NullLogger.Instance;
    }

    /// <inheritdoc />
    public async ValueTask<PublishResult> PublishAsync(IReadOnlyList<string> userIds, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        CheckPayload(payload);
        cancellationToken.ThrowIfCancellationRequested();
        var messageId = Guid.CreateVersion7();
        if (userIds.Count == 0)
        {
            return new PublishResult(messageId, 0, []);
        }

        // An id the wire format cannot carry (too long, not well-formed) can never be connected: it is reported
        // offline instead of failing the publish to everyone else.
        var (recipients, unreachable) = SplitUnencodable(userIds);
        if (recipients.Count == 0)
        {
            return new PublishResult(messageId, 0, unreachable);
        }

        if (_mode == RedisRoutingMode.Broadcast)
        {
            var envelope = EnvelopeCodec.Encode(EnvelopeKind.Users, _nodeId, messageId, recipients, payload.Span);
            var receivers = await PublishAsync(_keys.AllNodesChannel, envelope, cancellationToken).ConfigureAwait(false);

            // No node listens at all: nobody can be reached.
            return receivers == 0
                ? new PublishResult(messageId, 0, unreachable.Count == 0 ? recipients : [.. recipients, .. unreachable])
                : new PublishResult(messageId, 1, unreachable);
        }

        var lookup = await _registry.LocateAsync(recipients, cancellationToken).ConfigureAwait(false);
        var offline = unreachable.Count == 0 ? lookup.OfflineUsers : [.. lookup.OfflineUsers, .. unreachable];
        var count = lookup.UsersByNode.Count;
        if (count == 0)
        {
            return new PublishResult(messageId, 0, offline);
        }

        // Issue every per-node PUBLISH before awaiting any: they are pipelined on the one connection, in order.
        var sends = new Task<long>[count];
        var routes = new IReadOnlyList<string>[count];
        var nodes = new string[count];
        var i = 0;
        try
        {
            foreach (var pair in lookup.UsersByNode)
            {
                var envelope = EnvelopeCodec.Encode(EnvelopeKind.Users, _nodeId, messageId, pair.Value, payload.Span);
                routes[i] = pair.Value;
                nodes[i] = pair.Key;
                sends[i++] = _multiplexer.GetSubscriber().PublishAsync(_keys.NodeChannel(pair.Key), envelope);
            }

            await RedisFailures.WaitAllAsync(sends, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Publishes already handed to the connection finish on their own; make sure none faults unobserved.
            foreach (var send in sends)
            {
                RedisFailures.Observe(send);
            }

            if (RedisFailures.IsUnavailable(ex))
            {
                throw Unavailable(ex);
            }

            throw;
        }

        _metrics.Published(count);
        var reached = count;
        for (var n = 0; n < count; n++)
        {
            if (sends[n].Result == 0)
            {
                reached--;
            }
        }

        if (reached < count)
        {
            offline = WithDeadRoutes(offline, sends, routes, nodes);
        }

        return new PublishResult(messageId, reached, offline);
    }

    // A node channel with no subscriber is a dead route (the node's listener is not subscribed, or the node is gone):
    // its users are unreachable unless another node that hosts them was reached, and are reported offline, so the
    // caller pushes to them instead of believing them delivered.
    private List<string> WithDeadRoutes(IReadOnlyList<string> offline, Task<long>[] sends, IReadOnlyList<string>[] routes, string[] nodes)
    {
        var reachedUsers = new HashSet<string>(StringComparer.Ordinal);
        for (var n = 0; n < sends.Length; n++)
        {
            if (sends[n].Result > 0)
            {
                reachedUsers.UnionWith(routes[n]);
            }
        }

        var result = new List<string>(offline);
        var added = new HashSet<string>(StringComparer.Ordinal);
        for (var n = 0; n < sends.Length; n++)
        {
            if (sends[n].Result != 0)
            {
                continue;
            }

            _metrics.DeadRoute(routes[n].Count);
            RedisLog.DeadRoute(_logger, nodes[n], routes[n].Count);
            foreach (var user in routes[n])
            {
                if (!reachedUsers.Contains(user) && added.Add(user))
                {
                    result.Add(user);
                }
            }
        }

        return result;
    }

    /// <inheritdoc />
    public async ValueTask<Guid> PublishToAllAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        CheckPayload(payload);
        cancellationToken.ThrowIfCancellationRequested();
        var messageId = Guid.CreateVersion7();
        var envelope = EnvelopeCodec.Encode(EnvelopeKind.All, _nodeId, messageId, [], payload.Span);
        await PublishAsync(_keys.AllNodesChannel, envelope, cancellationToken).ConfigureAwait(false);
        return messageId;
    }

    /// <summary>Releases the broadcaster's metrics. The shared connection is not closed.</summary>
    public void Dispose() => _metrics.Dispose();

    private async Task<long> PublishAsync(RedisChannel channel, byte[] envelope, CancellationToken cancellationToken)
    {
        long receivers;
        try
        {
            receivers = await RedisFailures.WaitAsync(_multiplexer.GetSubscriber().PublishAsync(channel, envelope), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
        {
            throw Unavailable(ex);
        }

        _metrics.Published(1);
        return receivers;
    }

    private BackplaneUnavailableException Unavailable(Exception ex)
    {
        _metrics.PublishFailed();
        RedisLog.PublishFailed(_logger, ex);
        return RedisFailures.Unavailable("publish", ex);
    }

    private void CheckPayload(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > _maxPayloadBytes)
        {
            throw new ArgumentException($"The payload is {payload.Length} bytes; ChatScale:MaxPayloadBytes allows {_maxPayloadBytes}.", nameof(payload));
        }
    }

    private static (IReadOnlyList<string> Recipients, IReadOnlyList<string> Unreachable) SplitUnencodable(IReadOnlyList<string> userIds)
    {
        List<string>? recipients = null;
        List<string>? unreachable = null;
        for (var i = 0; i < userIds.Count; i++)
        {
            if (EnvelopeCodec.CanEncodeUserId(userIds[i]))
            {
                recipients?.Add(userIds[i]);
            }
            else
            {
                if (recipients is null)
                {
                    recipients = new List<string>(userIds.Count);
                    for (var j = 0; j < i; j++)
                    {
                        recipients.Add(userIds[j]);
                    }
                }

                (unreachable ??= []).Add(userIds[i]);
            }
        }

        return (recipients ?? userIds, unreachable ?? (IReadOnlyList<string>)[]);
    }
}
