namespace ChatScale;

/// <summary>The outcome of <see cref="IMessageBroadcaster.PublishAsync"/>.</summary>
public sealed class PublishResult
{
    /// <summary>Creates a result.</summary>
    /// <param name="messageId">The id the envelope was published under.</param>
    /// <param name="targetedNodes">How many nodes the message was sent to (0 when every recipient was offline).</param>
    /// <param name="offlineUsers">Recipients that had no connection anywhere at publish time.</param>
    public PublishResult(Guid messageId, int targetedNodes, IReadOnlyList<string> offlineUsers)
    {
        ArgumentNullException.ThrowIfNull(offlineUsers);
        MessageId = messageId;
        TargetedNodes = targetedNodes;
        OfflineUsers = offlineUsers;
    }

    /// <summary>The id the envelope was published under (a version 7 GUID: sortable by time).</summary>
    public Guid MessageId { get; }

    /// <summary>How many nodes the message was sent to. In broadcast routing mode this is the number of channels published to (1).</summary>
    public int TargetedNodes { get; }

    /// <summary>
    /// Recipients with no connection anywhere when the message was published. Empty when the routing mode cannot
    /// know (broadcast mode without presence lookup).
    /// </summary>
    public IReadOnlyList<string> OfflineUsers { get; }
}
