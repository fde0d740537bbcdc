namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The server's side of RFC 6455 framing for data: one final, unmasked text frame per message. A server frame is
/// never masked, so its bytes depend only on the payload and are the same for every recipient.
/// </summary>
internal static class WebSocketFrame
{
    /// <summary>The largest header: 2 bytes plus a 64-bit length.</summary>
    public const int MaxHeaderLength = 10;

    private const byte FinalText = 0x81;

    /// <summary>The length of the header of a text frame carrying <paramref name="payloadLength"/> bytes.</summary>
    public static int HeaderLength(int payloadLength) => payloadLength < 126 ? 2 : payloadLength <= ushort.MaxValue ? 4 : 10;

    /// <summary>Writes the header of a final text frame of <paramref name="payloadLength"/> bytes.</summary>
    /// <returns>How many bytes were written.</returns>
    public static int WriteTextHeader(Span<byte> destination, int payloadLength)
    {
        destination[0] = FinalText;
        if (payloadLength < 126)
        {
            destination[1] = (byte)payloadLength;
            return 2;
        }

        if (payloadLength <= ushort.MaxValue)
        {
            destination[1] = 126;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payloadLength);
            return 4;
        }

        destination[1] = 127;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)payloadLength);
        return 10;
    }
}
