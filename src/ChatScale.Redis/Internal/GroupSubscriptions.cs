using ChatScale.Backplane;
using ChatScale.Connections;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// This node's subscriptions to group channels: one per group with a local recipient, none otherwise, so a publish
/// reaches exactly the nodes hosting one. Each channel is read by one <see cref="ChannelMessageQueue"/> handler,
/// sequentially (one publisher's messages to a group arrive in order), which hands the payload to the group's
/// recipients here. Subscription changes are serialized.
/// </summary>
internal sealed class GroupSubscriptions(
    IConnectionMultiplexer multiplexer,
    RedisKeyspace keys,
    LocalGroupTable table,
    LocalConnections connections,
    int maxPayloadBytes,
    string nodeId,
    ILogger logger) : IDisposable
{
    private readonly SemaphoreSlim _serial = new(1, 1);

    /// <summary>Brings each group's subscription in line with its local recipients: subscribed while it has any.</summary>
    public async Task ReconcileAsync(IReadOnlyList<string> groupIds)
    {
        if (groupIds.Count == 0)
        {
            return;
        }

        try
        {
            await _serial.WaitAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            return; // The node stopped: its subscriptions are gone.
        }

        try
        {
            foreach (var groupId in groupIds)
            {
                if (!table.Subscription(groupId, out var wanted, out var queue, out var recipients))
                {
                    continue;
                }

                if (wanted && queue is null)
                {
                    var subscribed = await multiplexer.GetSubscriber().SubscribeAsync(keys.GroupChannel(groupId)).ConfigureAwait(false);
                    subscribed.OnMessage(m => Deliver(groupId, m));
                    table.Subscribed(groupId, subscribed);
                    GroupLog.Subscribed(logger, nodeId, groupId, recipients);
                }
                else if (!wanted && queue is not null)
                {
                    await queue.UnsubscribeAsync().ConfigureAwait(false);
                    table.Unsubscribed(groupId);
                    GroupLog.Unsubscribed(logger, nodeId, groupId);
                }
            }
        }
        finally
        {
            _serial.Release();
        }
    }

    /// <summary>Ends every group subscription (at shutdown).</summary>
    public Task UnsubscribeAllAsync() => RedisFailures.UnsubscribeQuietlyAsync(table.TakeSubscriptions());

    public void Dispose() => _serial.Dispose();

    private void Deliver(string groupId, ChannelMessage message)
    {
        ReadOnlyMemory<byte> data = (byte[]?)message.Message ?? [];
        BackplaneEnvelope envelope;
        try
        {
            envelope = EnvelopeCodec.Decode(data, maxPayloadBytes);
            if (envelope.Kind != EnvelopeKind.Group || !string.Equals(envelope.Recipients[0], groupId, StringComparison.Ordinal))
            {
                throw new EnvelopeFormatException("Not a group envelope of this channel's group.");
            }
        }
        catch (EnvelopeFormatException ex)
        {
            GroupLog.Malformed(logger, ex, message.Channel.ToString(), data.Length);
            return;
        }

        try
        {
            table.Recipients(groupId)?.Deliver(connections, envelope.Payload, envelope.RecipientCount == 2 ? envelope.Recipients[1] : null);
        }
        catch (Exception ex)
        {
            // One bad delivery must not stop the group's channel: log it and go on with the next message.
            GroupLog.DeliveryFailed(logger, ex, envelope.MessageId, groupId);
        }
    }
}
