namespace ChatScale.Backplane;

/// <summary>One message as it crosses the backplane between nodes. Produced by <see cref="EnvelopeCodec.Decode"/>.</summary>
public sealed class BackplaneEnvelope
{
    private IReadOnlyList<string>? _recipients;

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
        _recipients = recipients;
        RecipientCount = recipients.Count;
        Payload = payload;
    }

    // Decoded envelopes keep the recipients as the validated, length-prefixed UTF-8 block they arrived in, so the
    // receiving node can look connections up without creating a string per recipient.
    internal BackplaneEnvelope(EnvelopeKind kind, string originNodeId, Guid messageId, int recipientCount, ReadOnlyMemory<byte> encodedRecipients, ReadOnlyMemory<byte> payload)
    {
        Kind = kind;
        OriginNodeId = originNodeId;
        MessageId = messageId;
        RecipientCount = recipientCount;
        EncodedRecipients = encodedRecipients;
        Payload = payload;
    }

    /// <summary>What the receiving node should do.</summary>
    public EnvelopeKind Kind { get; }

    /// <summary>The node that published the envelope.</summary>
    public string OriginNodeId { get; }

    /// <summary>The message id (shared by every per-node envelope of one publish).</summary>
    public Guid MessageId { get; }

    /// <summary>The recipients the receiving node should deliver to (created as strings on first use after decoding).</summary>
    public IReadOnlyList<string> Recipients => _recipients ??= EnvelopeCodec.ReadRecipients(EncodedRecipients.Span, RecipientCount);

    /// <summary>How many recipients the envelope lists.</summary>
    public int RecipientCount { get; }

    /// <summary>The recipients as received (count-less, each a varint length and UTF-8), or empty when built from strings.</summary>
    internal ReadOnlyMemory<byte> EncodedRecipients { get; }

    /// <summary>Whether the recipients are only held encoded (a decoded envelope whose strings were not asked for).</summary>
    internal bool HasEncodedRecipients => _recipients is null;

    /// <summary>The frame to deliver, a slice of the received buffer (not copied).</summary>
    public ReadOnlyMemory<byte> Payload { get; }
}
