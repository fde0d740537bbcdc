using System.Diagnostics;
using System.Text;
using ChatScale.Backplane;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.BadInput;

/// <summary>
/// A time-bounded, structure-aware mutation fuzz of <see cref="EnvelopeCodec.Decode"/>. SharpFuzz needs a native
/// AFL (afl-fuzz), which is not available here, so this is a coverage-agnostic loop whose mutations know the wire
/// format: they target the varint length fields, the kind/version bytes and the UTF-8 strings.
/// </summary>
/// <remarks>
/// Figures: 15 s on one thread with a fixed seed (printed); each decode is timed and must finish under 5 s (a hang
/// detector, not a performance assert: GC pauses on the shared box reach ~170 ms); the whole loop has a 60 s deadline.
/// </remarks>
public sealed class EnvelopeFuzzTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(15);

    private static readonly byte[][] NastyUtf8 =
    [
        [0x80], [0xBF], [0xC0, 0xAF], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF0, 0x8F, 0xBF, 0xBF], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFE], [0xFF],
        [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xEF, 0xBB, 0xBF], [0x00], [0x0A], [0x0D, 0x0A],
    ];

    private static readonly byte[][] NastyVarInts =
    [
        [0x00], [0x7F], [0x80, 0x00], [0x80, 0x80, 0x80, 0x80, 0x00], [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], [0xFF, 0xFF, 0xFF, 0xFF, 0x10],
        [0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], [0x80], [0xFF], [0x81, 0x80, 0x80, 0x80, 0x08],
        [0xC0, 0x84, 0x3D], [0x80, 0x80, 0x80, 0x40], [0x80, 0x80, 0x80, 0x04],
    ];

    [Fact]
    public async Task Decode_of_mutated_envelopes_throws_only_EnvelopeFormatException_never_hangs_and_round_trips_what_it_accepts()
    {
        var seed = Environment.TickCount;
        var result = await Task.Run(() => Fuzz(seed)).WaitAsync(Duration + TimeSpan.FromSeconds(45));
        output.WriteLine($"seed {seed}: {result.Iterations:N0} inputs in {Duration.TotalSeconds} s; {result.Accepted:N0} decoded, {result.Rejected:N0} rejected with EnvelopeFormatException ({result.DistinctMessages} distinct messages); slowest decode {result.Slowest.TotalMilliseconds:F2} ms");
        Assert.True(result.Failure is null, $"seed {seed}: {result.Failure}");
        Assert.True(result.Slowest < TimeSpan.FromSeconds(5), $"a decode took {result.Slowest}");
        Assert.True(result.Accepted > 0 && result.Rejected > 0);
    }

    private static FuzzResult Fuzz(int seed)
    {
        var random = new Random(seed);
        var seeds = Seeds();
        var clock = Stopwatch.StartNew();
        long iterations = 0, accepted = 0, rejected = 0;
        var messages = new HashSet<string>(StringComparer.Ordinal);
        var slowest = TimeSpan.Zero;
        while (clock.Elapsed < Duration)
        {
            var (bytes, layout) = seeds[random.Next(seeds.Count)];
            var input = bytes.ToList();
            var rounds = 1 + random.Next(4);
            for (var r = 0; r < rounds; r++)
            {
                Mutate(input, layout, random, seeds);
            }

            var data = input.ToArray();
            int? maxPayload = random.Next(4) == 0 ? random.Next(0, 256) : null;
            iterations++;
            var start = Stopwatch.GetTimestamp();
            try
            {
                var envelope = maxPayload is { } max ? EnvelopeCodec.Decode(data, max) : EnvelopeCodec.Decode(data);
                accepted++;
                var failure = CheckAccepted(envelope, data, maxPayload);
                if (failure is not null)
                {
                    return new FuzzResult(iterations, accepted, rejected, messages.Count, slowest, $"{failure} for input {Convert.ToHexString(data)}");
                }
            }
            catch (EnvelopeFormatException ex)
            {
                rejected++;
                if (messages.Count < 10_000)
                {
                    messages.Add(ex.Message);
                }
            }
            catch (Exception ex)
            {
                return new FuzzResult(iterations, accepted, rejected, messages.Count, slowest, $"{ex.GetType().Name}: {ex.Message} for input {Convert.ToHexString(data)}");
            }

            var elapsed = Stopwatch.GetElapsedTime(start);
            if (elapsed > slowest)
            {
                slowest = elapsed;
            }
        }

        return new FuzzResult(iterations, accepted, rejected, messages.Count, slowest, null);
    }

    // What Decode accepted must be a real envelope: the payload lies inside the input, and encoding the decoded
    // values gives bytes that decode to the same values.
    private static string? CheckAccepted(BackplaneEnvelope envelope, byte[] data, int? maxPayload)
    {
        if (envelope.Payload.Length > (maxPayload ?? int.MaxValue) || envelope.Payload.Length > data.Length)
        {
            return $"payload of {envelope.Payload.Length} bytes accepted";
        }

        if (envelope.Kind == EnvelopeKind.All && envelope.Recipients.Count != 0)
        {
            return "an all-connections envelope with recipients";
        }

        var again = EnvelopeCodec.Decode(EnvelopeCodec.Encode(envelope.Kind, envelope.OriginNodeId, envelope.MessageId, envelope.Recipients, envelope.Payload.Span));
        return again.OriginNodeId == envelope.OriginNodeId
            && again.MessageId == envelope.MessageId
            && again.Recipients.SequenceEqual(envelope.Recipients)
            && again.Payload.Span.SequenceEqual(envelope.Payload.Span)
                ? null
                : "decoded values do not round-trip";
    }

    private static void Mutate(List<byte> input, Layout layout, Random random, List<(byte[] Bytes, Layout Layout)> seeds)
    {
        var at = input.Count == 0 ? 0 : random.Next(input.Count);
        switch (random.Next(12))
        {
            case 0 when input.Count > 0:
                input[at] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when input.Count > 0:
                input[at] = (byte)random.Next(256);
                break;
            case 2:
                // Truncate anywhere, including inside a varint or a multi-byte character.
                var keep = random.Next(input.Count + 1);
                input.RemoveRange(keep, input.Count - keep);
                break;
            case 3:
                input.InsertRange(at, Enumerable.Range(0, 1 + random.Next(16)).Select(_ => (byte)random.Next(256)));
                break;
            case 4:
                // Replace a varint length field (origin, recipient count, a recipient's length, payload length).
                var field = layout.VarInts[random.Next(layout.VarInts.Count)];
                if (field.Start + field.Length <= input.Count)
                {
                    input.RemoveRange(field.Start, field.Length);
                    input.InsertRange(field.Start, NastyVarInts[random.Next(NastyVarInts.Length)]);
                }

                break;
            case 5:
                // Nudge a varint by a small amount (off-by-one lengths).
                var f = layout.VarInts[random.Next(layout.VarInts.Count)];
                if (f.Start < input.Count)
                {
                    input[f.Start] = (byte)((input[f.Start] & 0x80) | ((input[f.Start] + random.Next(-2, 3)) & 0x7F));
                }

                break;
            case 6:
                // Invalid or boundary UTF-8 inside a string (origin or a recipient).
                if (layout.Strings.Count > 0)
                {
                    var s = layout.Strings[random.Next(layout.Strings.Count)];
                    var position = Math.Min(input.Count, s.Start + random.Next(s.Length + 1));
                    var nasty = NastyUtf8[random.Next(NastyUtf8.Length)];
                    if (random.Next(2) == 0 && position + nasty.Length <= input.Count)
                    {
                        for (var i = 0; i < nasty.Length; i++)
                        {
                            input[position + i] = nasty[i];
                        }
                    }
                    else
                    {
                        input.InsertRange(position, nasty);
                    }
                }

                break;
            case 7 when input.Count >= 3:
                // Header: magic, version, kind.
                input[random.Next(3)] = (byte)(random.Next(4) == 0 ? random.Next(256) : random.Next(4));
                break;
            case 8:
                // Splice with another seed.
                var other = seeds[random.Next(seeds.Count)].Bytes;
                var cut = random.Next(input.Count + 1);
                input.RemoveRange(cut, input.Count - cut);
                input.AddRange(other.Skip(random.Next(other.Length + 1)));
                break;
            case 9 when input.Count > 0:
                // Duplicate a chunk (repeated fields, recipients listed twice).
                var from = random.Next(input.Count);
                var chunk = input.Skip(from).Take(1 + random.Next(32)).ToList();
                input.InsertRange(random.Next(input.Count + 1), chunk);
                break;
            case 10:
                // Append trailing garbage after a valid payload.
                input.AddRange(Enumerable.Range(0, 1 + random.Next(8)).Select(_ => (byte)random.Next(256)));
                break;
            default:
                if (input.Count > 0)
                {
                    input.RemoveAt(at);
                }

                break;
        }
    }

    private static List<(byte[] Bytes, Layout Layout)> Seeds()
    {
        var seeds = new List<(byte[], Layout)>();
        void Add(EnvelopeKind kind, string origin, string[] recipients, byte[] payload)
        {
            var bytes = EnvelopeCodec.Encode(kind, origin, Guid.NewGuid(), recipients, payload);
            seeds.Add((bytes, Layout.Of(bytes)));
        }

        Add(EnvelopeKind.Users, "node-1", ["alice"], "{\"a\":1}"u8.ToArray());
        Add(EnvelopeKind.Users, "n", ["a", "b", "c", "d", "e", "f", "g", "h"], []);
        Add(EnvelopeKind.Users, "nöde-😀", ["ünïcödé", "emoji-🎉🎉", "line\nbreak", "tab\there", "\u0000nul"], Encoding.UTF8.GetBytes("{\"t\":\"€𝄞\"}"));
        Add(EnvelopeKind.Users, new string('n', 300), [new string('u', 200), new string('é', 100)], new byte[300]);
        Add(EnvelopeKind.All, "node-2", [], Encoding.UTF8.GetBytes(new string('x', 200)));
        Add(EnvelopeKind.All, "x", [], []);
        Add(EnvelopeKind.Users, "node-3", [.. Enumerable.Range(0, 130).Select(i => $"u{i}")], "[]"u8.ToArray());
        return seeds;
    }

    private sealed record FuzzResult(long Iterations, long Accepted, long Rejected, int DistinctMessages, TimeSpan Slowest, string? Failure);

    /// <summary>Where a valid envelope keeps its varints and strings, so mutations can aim at them.</summary>
    private sealed record Layout(List<(int Start, int Length)> VarInts, List<(int Start, int Length)> Strings)
    {
        public static Layout Of(byte[] envelope)
        {
            var varInts = new List<(int, int)>();
            var strings = new List<(int, int)>();
            var pos = 3;
            var originLength = ReadVarInt(envelope, ref pos, varInts);
            strings.Add((pos, originLength));
            pos += originLength + 16;
            var count = ReadVarInt(envelope, ref pos, varInts);
            for (var i = 0; i < count; i++)
            {
                var n = ReadVarInt(envelope, ref pos, varInts);
                strings.Add((pos, n));
                pos += n;
            }

            ReadVarInt(envelope, ref pos, varInts);
            return new Layout(varInts, strings);
        }

        private static int ReadVarInt(byte[] data, ref int pos, List<(int, int)> fields)
        {
            var start = pos;
            var value = 0;
            var shift = 0;
            while (true)
            {
                var b = data[pos++];
                value |= (b & 0x7F) << shift;
                shift += 7;
                if ((b & 0x80) == 0)
                {
                    fields.Add((start, pos - start));
                    return value;
                }
            }
        }
    }
}
