using System.Text;
using System.Text.Unicode;

namespace ChatScale.Backplane;

/// <summary>
/// The backplane wire format: a compact, versioned binary envelope. Every node of a deployment must speak the same
/// version; the decoder rejects anything else rather than guessing.
/// </summary>
/// <remarks>
/// Layout of version 1 (integers are unsigned LEB128 varints unless noted):
/// <code>
/// magic 0xC5 | version 0x01 | kind (1 byte) | originLen | origin UTF-8 | messageId (16 bytes, big-endian GUID)
/// | recipientCount | (len | UTF-8) * recipientCount | payloadLen | payload
/// </code>
/// A <see cref="EnvelopeKind.Group"/> envelope lists the group id and optionally one excluded user as its recipients,
/// so its header is bounded (at most two ids) whatever the group's size.
/// The payload must end exactly at the end of the input. The decoder checks every length against what remains
/// before reading, so it never reads out of bounds and never allocates more than the input could justify.
/// </remarks>
public static class EnvelopeCodec
{
    /// <summary>The version this codec writes and the only one it reads.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>The longest user id the wire format carries, in UTF-8 bytes.</summary>
    public const int MaxUserIdBytes = EnvelopeLimits.MaxUserIdBytes;

    private const byte Magic = 0xC5;
    private const int GuidBytes = 16;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Encodes an envelope into a new array of exactly the right size.</summary>
    /// <param name="kind">What the receiving node should do.</param>
    /// <param name="originNodeId">The publishing node.</param>
    /// <param name="messageId">The message id.</param>
    /// <param name="recipients">The recipients (ignored for <see cref="EnvelopeKind.All"/>).</param>
    /// <param name="payload">The frame bytes.</param>
    /// <returns>The encoded envelope.</returns>
    /// <exception cref="ArgumentException">A value exceeds the format's limits.</exception>
    public static byte[] Encode(EnvelopeKind kind, string originNodeId, Guid messageId, IReadOnlyList<string> recipients, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(originNodeId);
        ArgumentNullException.ThrowIfNull(recipients);
        if (kind is not (EnvelopeKind.Users or EnvelopeKind.All or EnvelopeKind.Group))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown envelope kind.");
        }

        if (kind == EnvelopeKind.Group && recipients.Count is not (1 or 2))
        {
            throw new ArgumentException("A group envelope lists the group id and at most one excluded user.", nameof(recipients));
        }

        var recipientCount = kind == EnvelopeKind.All ? 0 : recipients.Count;
        if (recipientCount > EnvelopeLimits.MaxRecipients)
        {
            throw new ArgumentException($"An envelope carries at most {EnvelopeLimits.MaxRecipients} recipients (got {recipientCount}).", nameof(recipients));
        }

        if (payload.Length > EnvelopeLimits.MaxPayloadBytes)
        {
            throw new ArgumentException($"The payload exceeds {EnvelopeLimits.MaxPayloadBytes} bytes.", nameof(payload));
        }

        var originBytes = CheckedByteCount(originNodeId, EnvelopeLimits.MaxNodeIdBytes, nameof(originNodeId));
        long length = 3 + VarIntLength((uint)originBytes) + originBytes + GuidBytes + VarIntLength((uint)recipientCount);
        for (var i = 0; i < recipientCount; i++)
        {
            var n = CheckedByteCount(recipients[i], EnvelopeLimits.MaxUserIdBytes, nameof(recipients));
            length += VarIntLength((uint)n) + n;
        }

        length += VarIntLength((uint)payload.Length) + payload.Length;
        if (length > int.MaxValue)
        {
            throw new ArgumentException("The envelope is too large.", nameof(recipients));
        }

        var buffer = new byte[length];
        var span = buffer.AsSpan();
        span[0] = Magic;
        span[1] = CurrentVersion;
        span[2] = (byte)kind;
        var pos = 3;
        pos += WriteString(span[pos..], originNodeId, originBytes);
        messageId.TryWriteBytes(span.Slice(pos, GuidBytes), bigEndian: true, out _);
        pos += GuidBytes;
        pos += WriteVarInt(span[pos..], (uint)recipientCount);
        for (var i = 0; i < recipientCount; i++)
        {
            var r = recipients[i];
            pos += WriteString(span[pos..], r, StrictUtf8.GetByteCount(r));
        }

        pos += WriteVarInt(span[pos..], (uint)payload.Length);
        payload.CopyTo(span[pos..]);
        return buffer;
    }

    /// <summary>
    /// Whether <paramref name="userId"/> can travel in an envelope: non-empty, well-formed UTF-16 (no unpaired
    /// surrogate) and at most <see cref="MaxUserIdBytes"/> bytes of UTF-8. Ids that cannot are never reachable.
    /// </summary>
    /// <param name="userId">The user id.</param>
    /// <returns><see langword="true"/> when the id can be a recipient.</returns>
    public static bool CanEncodeUserId(string? userId)
    {
        if (string.IsNullOrEmpty(userId) || userId.Length > EnvelopeLimits.MaxUserIdBytes)
        {
            return false;
        }

        // Fast path for the usual id: without surrogates it is well-formed, and 341 chars are at most 1,023 bytes.
        if (userId.Length <= EnvelopeLimits.MaxUserIdBytes / 3 && userId.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            return true;
        }

        try
        {
            return StrictUtf8.GetByteCount(userId) <= EnvelopeLimits.MaxUserIdBytes;
        }
        catch (EncoderFallbackException)
        {
            return false;
        }
    }

    /// <summary>Decodes an envelope. The returned payload is a slice of <paramref name="data"/>, not a copy.</summary>
    /// <param name="data">The received bytes.</param>
    /// <param name="maxPayloadBytes">The largest payload to accept (normally <see cref="ChatScaleOptions.MaxPayloadBytes"/>).</param>
    /// <returns>The envelope.</returns>
    /// <exception cref="EnvelopeFormatException">The input is truncated, oversized, of an unknown version or kind, has trailing bytes or invalid UTF-8.</exception>
    public static BackplaneEnvelope Decode(ReadOnlyMemory<byte> data, int maxPayloadBytes = EnvelopeLimits.MaxPayloadBytes)
    {
        var span = data.Span;
        if (span.Length < 3 + 1 + GuidBytes + 1 + 1)
        {
            throw new EnvelopeFormatException($"Envelope truncated: {span.Length} bytes is shorter than the smallest envelope.");
        }

        if (span[0] != Magic)
        {
            throw new EnvelopeFormatException($"Not a ChatScale envelope (first byte 0x{span[0]:X2}).");
        }

        if (span[1] != CurrentVersion)
        {
            throw new EnvelopeFormatException($"Unsupported envelope version {span[1]}; this node reads version {CurrentVersion}.");
        }

        var kind = (EnvelopeKind)span[2];
        if (kind is not (EnvelopeKind.Users or EnvelopeKind.All or EnvelopeKind.Group))
        {
            throw new EnvelopeFormatException($"Unknown envelope kind {span[2]}.");
        }

        var pos = 3;
        var origin = ReadString(span, ref pos, EnvelopeLimits.MaxNodeIdBytes, "origin node id");
        if (span.Length - pos < GuidBytes)
        {
            throw new EnvelopeFormatException("Envelope truncated in the message id.");
        }

        var messageId = new Guid(span.Slice(pos, GuidBytes), bigEndian: true);
        pos += GuidBytes;

        var count = ReadVarInt(span, ref pos, "recipient count");
        if (kind == EnvelopeKind.All && count != 0)
        {
            throw new EnvelopeFormatException("An envelope for all connections must not list recipients.");
        }

        if (kind == EnvelopeKind.Group && count is not (1 or 2))
        {
            throw new EnvelopeFormatException("A group envelope must list the group id and at most one excluded user.");
        }

        // Each recipient takes at least one byte, so a count larger than what remains is a lie: reject it before allocating.
        if (count > EnvelopeLimits.MaxRecipients || count > (uint)(span.Length - pos))
        {
            throw new EnvelopeFormatException($"Recipient count {count} exceeds the limit or the remaining input.");
        }

        // Recipients are validated here but kept as UTF-8: the receiving node looks them up without a string each.
        var recipientsStart = pos;
        for (var i = 0; i < count; i++)
        {
            var length = ReadVarInt(span, ref pos, "recipient length");
            if (length > EnvelopeLimits.MaxUserIdBytes)
            {
                throw new EnvelopeFormatException($"The recipient is {length} bytes; the limit is {EnvelopeLimits.MaxUserIdBytes}.");
            }

            if (length > (uint)(span.Length - pos))
            {
                throw new EnvelopeFormatException("Envelope truncated in the recipient.");
            }

            if (!Utf8.IsValid(span.Slice(pos, (int)length)))
            {
                throw new EnvelopeFormatException("The recipient is not valid UTF-8.");
            }

            pos += (int)length;
        }

        var recipients = data[recipientsStart..pos];

        var payloadLength = ReadVarInt(span, ref pos, "payload length");
        var limit = Math.Min(maxPayloadBytes, EnvelopeLimits.MaxPayloadBytes);
        if (payloadLength > (uint)limit)
        {
            throw new EnvelopeFormatException($"Payload of {payloadLength} bytes exceeds the limit of {limit}.");
        }

        if (payloadLength != (uint)(span.Length - pos))
        {
            throw new EnvelopeFormatException($"Payload length {payloadLength} does not match the {span.Length - pos} bytes remaining.");
        }

        return new BackplaneEnvelope(kind, origin, messageId, (int)count, recipients, data.Slice(pos, (int)payloadLength));
    }

    /// <summary>Reads the next recipient of a validated recipients block written by <see cref="Encode"/>.</summary>
    internal static ReadOnlySpan<byte> NextRecipient(ReadOnlySpan<byte> block, ref int pos)
    {
        var length = (int)ReadVarInt(block, ref pos, "recipient length");
        var utf8 = block.Slice(pos, length);
        pos += length;
        return utf8;
    }

    /// <summary>Creates the recipient strings of a validated recipients block.</summary>
    internal static string[] ReadRecipients(ReadOnlySpan<byte> block, int count)
    {
        var recipients = count == 0 ? [] : new string[count];
        var pos = 0;
        for (var i = 0; i < recipients.Length; i++)
        {
            recipients[i] = StrictUtf8.GetString(NextRecipient(block, ref pos));
        }

        return recipients;
    }

    private static int CheckedByteCount(string value, int max, string paramName)
    {
        ArgumentNullException.ThrowIfNull(value, paramName);
        int count;
        try
        {
            count = StrictUtf8.GetByteCount(value);
        }
        catch (EncoderFallbackException ex)
        {
            throw new ArgumentException($"'{paramName}' contains an unpaired surrogate and cannot be encoded as UTF-8.", paramName, ex);
        }

        if (count > max)
        {
            throw new ArgumentException($"'{paramName}' is {count} UTF-8 bytes; the limit is {max}.", paramName);
        }

        return count;
    }

    private static int WriteString(Span<byte> destination, string value, int byteCount)
    {
        var n = WriteVarInt(destination, (uint)byteCount);
        StrictUtf8.GetBytes(value, destination.Slice(n, byteCount));
        return n + byteCount;
    }

    private static string ReadString(ReadOnlySpan<byte> span, ref int pos, int maxBytes, string what)
    {
        var length = ReadVarInt(span, ref pos, what + " length");
        if (length > (uint)maxBytes)
        {
            throw new EnvelopeFormatException($"The {what} is {length} bytes; the limit is {maxBytes}.");
        }

        if (length > (uint)(span.Length - pos))
        {
            throw new EnvelopeFormatException($"Envelope truncated in the {what}.");
        }

        try
        {
            var value = StrictUtf8.GetString(span.Slice(pos, (int)length));
            pos += (int)length;
            return value;
        }
        catch (DecoderFallbackException ex)
        {
            throw new EnvelopeFormatException($"The {what} is not valid UTF-8.", ex);
        }
    }

    private static uint ReadVarInt(ReadOnlySpan<byte> span, ref int pos, string what)
    {
        uint result = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            if (pos >= span.Length)
            {
                throw new EnvelopeFormatException($"Envelope truncated in the {what}.");
            }

            var b = span[pos++];
            if (shift == 28 && b > 0x0F)
            {
                throw new EnvelopeFormatException($"The {what} overflows 32 bits.");
            }

            result |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return result;
            }
        }

        throw new EnvelopeFormatException($"The {what} overflows 32 bits.");
    }

    private static int WriteVarInt(Span<byte> destination, uint value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i++] = (byte)value;
        return i;
    }

    private static int VarIntLength(uint value) => value switch
    {
        < 1u << 7 => 1,
        < 1u << 14 => 2,
        < 1u << 21 => 3,
        < 1u << 28 => 4,
        _ => 5,
    };
}
