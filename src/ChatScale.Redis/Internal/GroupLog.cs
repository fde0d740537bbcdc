using Microsoft.Extensions.Logging;

namespace ChatScale.Redis.Internal;

/// <summary>The log messages of Redis groups (event ids 27xx).</summary>
internal static partial class GroupLog
{
    [LoggerMessage(2700, LogLevel.Debug, "Node {NodeId} subscribed to group {GroupId} ({Members} local members).")]
    public static partial void Subscribed(ILogger logger, string nodeId, string groupId, int members);

    [LoggerMessage(2701, LogLevel.Debug, "Node {NodeId} unsubscribed from group {GroupId} (no local member left).")]
    public static partial void Unsubscribed(ILogger logger, string nodeId, string groupId);

    [LoggerMessage(2702, LogLevel.Warning, "A malformed group message of {Length} bytes on {Channel} was dropped.")]
    public static partial void Malformed(ILogger logger, Exception exception, string channel, int length);

    [LoggerMessage(2703, LogLevel.Warning, "Updating group subscriptions of node {NodeId} failed; membership of its users may be stale until they reconnect.")]
    public static partial void UpdateFailed(ILogger logger, Exception exception, string nodeId);

    [LoggerMessage(2704, LogLevel.Debug, "Membership change {ChangeId} was not acknowledged by {Missing} node(s) within {Timeout}.")]
    public static partial void AckTimedOut(ILogger logger, Guid changeId, int missing, TimeSpan timeout);

    [LoggerMessage(2705, LogLevel.Debug, "Membership change {ChangeId} of group {GroupId} is kept by node {NodeId} until the user's groups are loaded.")]
    public static partial void ChangeKept(ILogger logger, Guid changeId, string groupId, string nodeId);

    [LoggerMessage(2706, LogLevel.Error, "Delivering group message {MessageId} of group {GroupId} failed; the group's next messages are still delivered.")]
    public static partial void DeliveryFailed(ILogger logger, Exception exception, Guid messageId, string groupId);

    [LoggerMessage(2707, LogLevel.Warning, "Group subscriptions of node {NodeId} had not ended by the host's shutdown deadline; they end with the connection.")]
    public static partial void StopTimedOut(ILogger logger, string nodeId);
}
