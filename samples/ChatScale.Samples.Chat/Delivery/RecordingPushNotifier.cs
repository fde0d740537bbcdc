using System.Collections.Concurrent;

namespace ChatScale.Samples.Chat.Delivery;

/// <summary>The sample's <see cref="IPushNotifier"/>: keeps notifications in memory (deduplicated) so tests and the dev endpoint can see them.</summary>
public sealed class RecordingPushNotifier : IPushNotifier
{
    private readonly ConcurrentDictionary<(string MessageId, string UserId), PushNotification> _sent = new();
    private readonly ConcurrentQueue<PushNotification> _inOrder = new();

    /// <inheritdoc />
    public ValueTask NotifyAsync(PushNotification notification, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(notification);
        if (_sent.TryAdd((notification.MessageId, notification.UserId), notification))
        {
            _inOrder.Enqueue(notification);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Everything recorded on this node, oldest first.</summary>
    public IReadOnlyList<PushNotification> Recorded => [.. _inOrder];

    /// <summary>What was recorded for <paramref name="userId"/>, oldest first.</summary>
    /// <param name="userId">The user.</param>
    /// <returns>The notifications.</returns>
    public IReadOnlyList<PushNotification> For(string userId) => [.. _inOrder.Where(n => n.UserId == userId)];
}
