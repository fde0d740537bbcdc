using Microsoft.Extensions.Logging;

namespace ChatScale.Redis.Internal;

/// <summary>Every log message of ChatScale.Redis, with stable event ids (2xxx).</summary>
internal static partial class RedisLog
{
    [LoggerMessage(2001, LogLevel.Information, "Backplane listener of node {NodeId} subscribed to {Channel}.")]
    public static partial void Subscribed(ILogger logger, string nodeId, string channel);

    [LoggerMessage(2002, LogLevel.Warning, "Backplane listener of node {NodeId} could not subscribe to {Channel}; retrying in {Delay}.")]
    public static partial void SubscribeFailed(ILogger logger, Exception exception, string nodeId, string channel, TimeSpan delay);

    [LoggerMessage(2003, LogLevel.Warning, "Dropped a malformed backplane envelope of {Length} bytes on {Channel}.")]
    public static partial void MalformedEnvelope(ILogger logger, Exception exception, string channel, int length);

    [LoggerMessage(2004, LogLevel.Error, "Delivering backplane message {MessageId} from node {OriginNodeId} failed.")]
    public static partial void DeliveryFailed(ILogger logger, Exception exception, Guid messageId, string originNodeId);

    [LoggerMessage(2005, LogLevel.Warning, "The subscription to {Channel} ended unexpectedly; resubscribing.")]
    public static partial void SubscriptionEnded(ILogger logger, string channel);

    [LoggerMessage(2006, LogLevel.Debug, "Backplane listener of node {NodeId} stopped.")]
    public static partial void ListenerStopped(ILogger logger, string nodeId);

    [LoggerMessage(2101, LogLevel.Warning, "Publishing to the Redis backplane failed: Redis is unreachable.")]
    public static partial void PublishFailed(ILogger logger, Exception exception);

    [LoggerMessage(2203, LogLevel.Warning, "Presence of node {NodeId} held {Found} of its {Expected} connections (Redis restarted or the node was swept); re-registered them.")]
    public static partial void PresenceRestored(ILogger logger, string nodeId, long found, int expected);

    [LoggerMessage(2201, LogLevel.Information, "Swept {Removed} presence entries of dead node {NodeId}.")]
    public static partial void NodeSwept(ILogger logger, string nodeId, long removed);

    [LoggerMessage(2202, LogLevel.Warning, "The presence sweep failed; it runs again in {Interval}.")]
    public static partial void SweepFailed(ILogger logger, Exception exception, TimeSpan interval);
}
