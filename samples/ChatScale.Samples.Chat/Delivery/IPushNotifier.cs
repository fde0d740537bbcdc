namespace ChatScale.Samples.Chat.Delivery;

/// <summary>
/// The extension point for offline participants: plug in APNs, FCM, e-mail... The sample registers
/// <see cref="RecordingPushNotifier"/>, which only records.
/// </summary>
/// <remarks>
/// Broadcast jobs run at least once, so the same (message, user) pair can be notified again after a retry:
/// implementations must deduplicate on <see cref="PushNotification.MessageId"/> + <see cref="PushNotification.UserId"/>
/// (push services take a collapse/idempotency key for this).
/// </remarks>
public interface IPushNotifier
{
    /// <summary>Notifies one offline user.</summary>
    /// <param name="notification">The notification.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    ValueTask NotifyAsync(PushNotification notification, CancellationToken cancellationToken);
}
