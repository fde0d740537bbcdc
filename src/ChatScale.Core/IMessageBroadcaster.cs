namespace ChatScale;

/// <summary>
/// Publishes one already-serialized payload to users wherever they are connected (this node or any other).
/// </summary>
/// <remarks>
/// <para><b>Delivery guarantee.</b> At most once per connection. A publish that returns has handed the payload to
/// the transport (the in-memory fan-out engine or the backplane); it does not wait for any socket write. A user who is
/// offline at publish time, or whose connection drops while the frame is queued, does not receive it: read
/// <see cref="PublishResult.OfflineUsers"/> and fall back to the store of record or a push notification.</para>
/// <para><b>Ordering.</b> Payloads published one after another by one caller (each call awaited before the next)
/// reach every connection in that order. Calls made concurrently have no defined order.</para>
/// <para><b>Threading.</b> Implementations are thread-safe and are registered as singletons. The payload is shared,
/// not copied, with every recipient's send queue: the caller must not modify or return the memory to a pool after
/// the call.</para>
/// </remarks>
public interface IMessageBroadcaster
{
    /// <summary>Publishes <paramref name="payload"/> to every connection of each of <paramref name="userIds"/>.</summary>
    /// <param name="userIds">The recipients. Duplicates are delivered once per occurrence; pass a distinct list.</param>
    /// <param name="payload">The frame to send, typically UTF-8 JSON, serialized once by the caller.</param>
    /// <param name="cancellationToken">Cancels the publish (not deliveries already handed over).</param>
    /// <returns>What the broadcaster knows about the routing: message id, nodes targeted, users offline.</returns>
    /// <exception cref="BackplaneUnavailableException">The backplane could not be reached or did not confirm; nothing was
    /// published unless <see cref="BackplaneUnavailableException.MayHaveSucceeded"/> is true.</exception>
    ValueTask<PublishResult> PublishAsync(IReadOnlyList<string> userIds, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);

    /// <summary>Publishes <paramref name="payload"/> to every connection on every node.</summary>
    /// <param name="payload">The frame to send.</param>
    /// <param name="cancellationToken">Cancels the publish.</param>
    /// <returns>The id the message was published under.</returns>
    /// <exception cref="BackplaneUnavailableException">The backplane could not be reached or did not confirm; nothing was
    /// published unless <see cref="BackplaneUnavailableException.MayHaveSucceeded"/> is true.</exception>
    ValueTask<Guid> PublishToAllAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default);
}
