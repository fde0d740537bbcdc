using System.Text;
using ChatScale.Backplane;

namespace ChatScale.Core.Tests.Backplane;

public sealed class EnvelopeCodecTests
{
    private static readonly string[] SomeUsers = ["alice", "bob", "Zoë 🚀", "user\nwith newline", new string('x', 300)];

    [Fact]
    public void RoundTrip_UsersEnvelope_PreservesEveryField()
    {
        var id = Guid.CreateVersion7();
        var payload = Encoding.UTF8.GetBytes("{\"text\":\"hello\"}");

        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "node-1", id, SomeUsers, payload);
        var envelope = EnvelopeCodec.Decode(bytes);

        Assert.Equal(EnvelopeKind.Users, envelope.Kind);
        Assert.Equal("node-1", envelope.OriginNodeId);
        Assert.Equal(id, envelope.MessageId);
        Assert.Equal(SomeUsers, envelope.Recipients);
        Assert.Equal(payload, envelope.Payload.ToArray());
    }

    [Fact]
    public void RoundTrip_AllEnvelope_HasNoRecipients()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.All, "n", Guid.Empty, ["ignored"], [1, 2, 3]);
        var envelope = EnvelopeCodec.Decode(bytes);

        Assert.Equal(EnvelopeKind.All, envelope.Kind);
        Assert.Empty(envelope.Recipients);
        Assert.Equal(new byte[] { 1, 2, 3 }, envelope.Payload.ToArray());
    }

    [Fact]
    public void Decode_PayloadIsASliceOfTheInputNotACopy()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["a"], [9, 9]);
        var envelope = EnvelopeCodec.Decode(bytes);

        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(envelope.Payload, out var segment));
        Assert.Same(bytes, segment.Array);
    }

    [Fact]
    public void RoundTrip_ThousandsOfRandomEnvelopes_AreIdentical()
    {
        var random = new Random(20261125);
        for (var n = 0; n < 5_000; n++)
        {
            var kind = random.Next(4) == 0 ? EnvelopeKind.All : EnvelopeKind.Users;
            var origin = RandomString(random, random.Next(1, 40));
            var id = new Guid(RandomBytes(random, 16));
            var recipients = Enumerable.Range(0, random.Next(0, 60)).Select(_ => RandomString(random, random.Next(0, 80))).ToArray();
            var payload = RandomBytes(random, random.Next(0, random.Next(2) == 0 ? 64 : 70_000));

            var decoded = EnvelopeCodec.Decode(EnvelopeCodec.Encode(kind, origin, id, recipients, payload));

            Assert.Equal(kind, decoded.Kind);
            Assert.Equal(origin, decoded.OriginNodeId);
            Assert.Equal(id, decoded.MessageId);
            Assert.Equal(kind == EnvelopeKind.All ? [] : recipients, decoded.Recipients);
            Assert.True(payload.AsSpan().SequenceEqual(decoded.Payload.Span), $"payload differs for envelope {n}");
        }
    }

    [Fact]
    public void Decode_EveryTruncation_ThrowsEnvelopeFormatException()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "node-1", Guid.NewGuid(), SomeUsers, Encoding.UTF8.GetBytes("payload"));
        for (var length = 0; length < bytes.Length; length++)
        {
            var truncated = bytes.AsMemory(0, length);
            Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(truncated));
        }
    }

    [Fact]
    public void Decode_TrailingBytes_Throws()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["a"], [1]);
        var longer = bytes.Append((byte)0).ToArray();

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(longer));
        Assert.Contains("does not match", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_UnknownVersion_ThrowsNamingTheVersion()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["a"], [1]);
        bytes[1] = 2;

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));
        Assert.Contains("version 2", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 0x00)]
    [InlineData(0, 0x7B)] // a JSON message published on the channel by someone else
    [InlineData(2, 0x00)]
    [InlineData(2, 0x04)]
    [InlineData(2, 0xFF)]
    public void Decode_BadMagicOrKind_Throws(int index, byte value)
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["a"], [1]);
        bytes[index] = value;

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));
    }

    [Fact]
    public void Decode_PayloadOverTheLimit_Throws()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["a"], new byte[1000]);

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes, maxPayloadBytes: 999));
        Assert.Equal(1000, EnvelopeCodec.Decode(bytes, maxPayloadBytes: 1000).Payload.Length);
    }

    [Fact]
    public void Decode_HugeRecipientCount_ThrowsWithoutAllocatingForIt()
    {
        // magic, version, kind, origin "n", guid, then a recipient count of 2^28 with almost no bytes behind it.
        var bytes = new List<byte> { 0xC5, 1, 1, 1, (byte)'n' };
        bytes.AddRange(new byte[16]);
        bytes.AddRange(new byte[] { 0x80, 0x80, 0x80, 0x80, 0x01 });
        bytes.Add(0);

        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes.ToArray()));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024, "the decoder must not allocate for a count the input cannot hold");
    }

    [Fact]
    public void Decode_VarIntOverflow_Throws()
    {
        var bytes = new List<byte> { 0xC5, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F };
        bytes.AddRange(new byte[40]);

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes.ToArray()));
    }

    [Fact]
    public void Decode_InvalidUtf8InARecipient_Throws()
    {
        // Guid.Empty: a random id could itself contain the byte 'a' and be corrupted instead of the recipient.
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.Empty, ["ab"], [1]);
        var at = Array.IndexOf(bytes, (byte)'a');
        bytes[at] = 0xFF;

        var ex = Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));
        Assert.Contains("UTF-8", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_AllEnvelopeWithRecipients_Throws()
    {
        var bytes = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["a"], [1]);
        bytes[2] = (byte)EnvelopeKind.All;

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(bytes));
    }

    [Fact]
    public void Decode_RandomMutations_EitherDecodeOrThrowEnvelopeFormatException()
    {
        var random = new Random(7);
        var seeds = new[]
        {
            EnvelopeCodec.Encode(EnvelopeKind.Users, "node-1", Guid.NewGuid(), SomeUsers, Encoding.UTF8.GetBytes("{\"x\":1}")),
            EnvelopeCodec.Encode(EnvelopeKind.All, "n", Guid.NewGuid(), [], new byte[300]),
            EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), Enumerable.Range(0, 200).Select(i => $"u{i}").ToArray(), [1]),
        };

        for (var n = 0; n < 50_000; n++)
        {
            var input = (byte[])seeds[random.Next(seeds.Length)].Clone();
            var flips = random.Next(1, 6);
            for (var f = 0; f < flips; f++)
            {
                input[random.Next(input.Length)] = (byte)random.Next(256);
            }

            var length = random.Next(4) == 0 ? random.Next(input.Length + 1) : input.Length;
            try
            {
                var envelope = EnvelopeCodec.Decode(input.AsMemory(0, length));
                Assert.InRange(envelope.Payload.Length, 0, length);
            }
            catch (EnvelopeFormatException)
            {
                // The expected outcome for most mutations.
            }
        }
    }

    [Fact]
    public void Encode_OverlongUserId_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), [new string('x', 1025)], []));
        Assert.Contains("1024", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_UnpairedSurrogate_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), ["\uD800"], []));
    }

    [Theory]
    [InlineData("alice", true)]
    [InlineData("Zoë 🚀", true)]
    [InlineData("line\nbreak", true)]
    [InlineData("", false)]
    public void CanEncodeUserId_AcceptsWhatTheFormatCarries(string userId, bool expected)
        => Assert.Equal(expected, EnvelopeCodec.CanEncodeUserId(userId));

    [Fact]
    public void CanEncodeUserId_RejectsUnpairedSurrogates()
    {
        // Not theory data: xunit's serialization of theory arguments would replace lone surrogates with U+FFFD.
        Assert.False(EnvelopeCodec.CanEncodeUserId("\uD800"));
        Assert.False(EnvelopeCodec.CanEncodeUserId("ok\uDC00"));
        Assert.False(EnvelopeCodec.CanEncodeUserId(new string('x', 400) + "\uD800"));
    }

    [Fact]
    public void CanEncodeUserId_CountsUtf8BytesNotChars()
    {
        Assert.True(EnvelopeCodec.CanEncodeUserId(new string('x', 1024)));
        Assert.False(EnvelopeCodec.CanEncodeUserId(new string('x', 1025)));
        Assert.True(EnvelopeCodec.CanEncodeUserId(string.Concat(Enumerable.Repeat("😀", 256)))); // 1,024 bytes
        Assert.False(EnvelopeCodec.CanEncodeUserId(string.Concat(Enumerable.Repeat("😀", 257)))); // 1,028 bytes
        Assert.False(EnvelopeCodec.CanEncodeUserId(new string('é', 513))); // 1,026 bytes in 513 chars
        Assert.False(EnvelopeCodec.CanEncodeUserId(null));
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static string RandomString(Random random, int length)
    {
        var alphabet = "abcXYZ019 -_:\n\té漢字🚀";
        var builder = new StringBuilder(length);
        while (builder.Length < length)
        {
            var i = random.Next(alphabet.Length);
            if (char.IsHighSurrogate(alphabet[i]))
            {
                builder.Append(alphabet, i, 2);
            }
            else if (!char.IsLowSurrogate(alphabet[i]))
            {
                builder.Append(alphabet[i]);
            }
        }

        return builder.ToString();
    }
}
