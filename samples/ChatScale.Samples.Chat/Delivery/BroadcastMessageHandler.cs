using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Delivery;

/// <summary>
/// Publishes a saved message to its conversation's participants wherever they are connected, and hands those who are
/// offline to <see cref="IPushNotifier"/>.
/// </summary>
/// <remarks>
/// Idempotent by message id, as at-least-once jobs require: a rerun publishes the same frame again, which clients
/// drop because they already hold that message id, and notifies the same (message, user) pairs, which
/// <see cref="IPushNotifier"/> implementations deduplicate. Nothing else is written.
/// </remarks>
public sealed partial class BroadcastMessageHandler(IChatStore store, IMessageBroadcaster broadcaster, IPushNotifier notifier, ILogger<BroadcastMessageHandler> logger)
    : IJobHandler<BroadcastMessageJob>
{
    private const int PreviewLength = 80;

    /// <inheritdoc />
    public async ValueTask HandleAsync(BroadcastMessageJob job, JobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        var message = job.Message;

        // Participants are read now, not when the message was sent: someone removed meanwhile no longer receives it.
        var conversation = await store.GetConversationAsync(message.ConversationId, cancellationToken);
        if (conversation is null)
        {
            LogConversationGone(logger, message.Id, message.ConversationId);
            return;
        }

        // One serialization; the broadcaster shares these bytes with every recipient on every node.
        var frame = ChatEvents.MessageFrame(message);
        var result = await broadcaster.PublishAsync(conversation.Participants, frame, cancellationToken);

        var preview = message.Text.Length <= PreviewLength ? message.Text : message.Text[..PreviewLength] + "…";
        foreach (var user in result.OfflineUsers)
        {
            if (user != message.Sender)
            {
                await notifier.NotifyAsync(new PushNotification(user, message.ConversationId, message.Id, message.Sender, preview), cancellationToken);
            }
        }
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Message {MessageId} not broadcast: conversation {ConversationId} no longer exists.")]
    private static partial void LogConversationGone(ILogger logger, string messageId, string conversationId);
}
