namespace ChatScale.Backplane;

/// <summary>One message as it crosses the backplane between nodes. Produced by <see cref="EnvelopeCodec.Decode"/>.</summary>
public sealed class BackplaneEnvelope
{
    /// <summary>Creates an envelope.</summary>
    /// <param name="kind">What the receiving node should do.</param>
    /// <param name="originNodeId">The node that published it.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="recipients">The recipients on the receiving node (empty for <see cref="EnvelopeKind.All"/>).</param>
    /// <param name="payload">The frame to deliver.</param>
    public BackplaneEnvelope(EnvelopeKind kind, string originNodeId, Guid messageId, IReadOnlyList<string> recipients, ReadOnlyMemory<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(originNodeId);
        ArgumentNullException.ThrowIfNull(recipients);
        Kind = kind;
        OriginNodeId = originNodeId;
        MessageId = messageId;
        Recipients = recipients;
        Payload = payload;
    }

    /// <summary>What the receiving node should do.</summary>
    public EnvelopeKind Kind { get; }

    /// <summary>The node that published the envelope.</summary>
    public string OriginNodeId { get; }

    /// <summary>The message id (shared by every per-node envelope of one publish).</summary>
    public Guid MessageId { get; }

    /// <summary>The recipients the receiving node should deliver to.</summary>
    public IReadOnlyList<string> Recipients { get; }

    /// <summary>The frame to deliver, a slice of the received buffer (not copied).</summary>
    public ReadOnlyMemory<byte> Payload { get; }
}
