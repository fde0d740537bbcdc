namespace ChatScale;

/// <summary>The outcome of <see cref="IMessageBroadcaster.PublishAsync"/>.</summary>
public sealed class PublishResult
{
    /// <summary>Creates a result.</summary>
    /// <param name="messageId">The id the envelope was published under.</param>
    /// <param name="targetedNodes">How many nodes the message reached (0 when every recipient was offline or unreachable).</param>
    /// <param name="offlineUsers">Recipients that had no reachable connection anywhere at publish time.</param>
    public PublishResult(Guid messageId, int targetedNodes, IReadOnlyList<string> offlineUsers)
    {
        ArgumentNullException.ThrowIfNull(offlineUsers);
        MessageId = messageId;
        TargetedNodes = targetedNodes;
        OfflineUsers = offlineUsers;
    }

    /// <summary>The id the envelope was published under (a version 7 GUID: sortable by time).</summary>
    public Guid MessageId { get; }

    /// <summary>
    /// How many nodes the message reached: nodes whose channel had a subscriber. In broadcast routing mode this is the
    /// number of channels published to with at least one subscriber (1, or 0 when no node listens).
    /// </summary>
    public int TargetedNodes { get; }

    /// <summary>
    /// Recipients with no connection anywhere when the message was published, and recipients whose only nodes could
    /// not receive it (a node channel with no subscriber: its listener is down or not yet subscribed). Push to them.
    /// Empty when the routing mode cannot know (broadcast mode without presence lookup, while some node listens).
    /// </summary>
    public IReadOnlyList<string> OfflineUsers { get; }
}
