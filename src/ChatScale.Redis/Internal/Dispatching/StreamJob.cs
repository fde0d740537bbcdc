using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using ChatScale.Dispatching;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// A job as stored in one stream entry: a single binary field <c>j</c> (no per-job JSON envelope; the job itself is
/// the registration's JSON), plus what its current runner knows (attempts so far, time until its next attempt).
/// </summary>
/// <remarks>
/// Layout of <c>j</c>, version 1: <c>[1][flags: 1 key, 2 trace][enqueued unix ms: 8][job id: 16]</c>
/// <c>[type length: 2][type UTF-8]</c>, then with a key <c>[length: 4][UTF-8]</c> (an empty key is a key),
/// with a trace <c>[trace id: 16][span id: 8][trace flags: 1]</c>, then the payload to the end. Big-endian integers.
/// </remarks>
internal sealed class StreamJob
{
    public const string Field = "j";
    private const byte Version = 1;
    private const byte HasKey = 1;
    private const byte HasTrace = 2;

    public RedisValue EntryId { get; private init; }

    public string JobId { get; private init; } = string.Empty;

    public string TypeName { get; private init; } = string.Empty;

    public string? Key { get; private init; }

    /// <summary>The <see cref="OrderingKeyHash.Fnv1a"/> hash of <see cref="Key"/> (0 without a key), as the wake-ups name it.</summary>
    public uint KeyHash { get; private init; }

    public ReadOnlyMemory<byte> Payload { get; private init; }

    public DateTimeOffset EnqueuedAt { get; private init; }

    public ActivityContext EnqueuedBy { get; private init; }

    public JobTypeRegistration? Registration { get; private init; }

    /// <summary>The entry could not be decoded; it is dead-lettered at once.</summary>
    public string? Malformed { get; private init; }

    /// <summary>Attempts made so far, on any node (from the entry's attempt record). Touched by its current runner only.</summary>
    public int Attempts { get; set; }

    /// <summary>How long to wait before the next attempt (the rest of a backoff another owner started).</summary>
    public TimeSpan Delay { get; set; }

    public static byte[] Encode(Guid jobId, string type, string? key, DateTimeOffset enqueuedAt, ActivityContext trace, ReadOnlySpan<byte> payload)
    {
        var typeLength = Encoding.UTF8.GetByteCount(type);
        var keyLength = key is null ? 0 : Encoding.UTF8.GetByteCount(key);
        var hasTrace = trace != default;
        var size = 1 + 1 + 8 + 16 + 2 + typeLength + (key is null ? 0 : 4 + keyLength) + (hasTrace ? 25 : 0) + payload.Length;
        var buffer = new byte[size];
        var span = buffer.AsSpan();
        span[0] = Version;
        span[1] = (byte)((key is null ? 0 : HasKey) | (hasTrace ? HasTrace : 0));
        BinaryPrimitives.WriteInt64BigEndian(span[2..], enqueuedAt.ToUnixTimeMilliseconds());
        jobId.TryWriteBytes(span.Slice(10, 16), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt16BigEndian(span[26..], checked((ushort)typeLength));
        var at = 28 + Encoding.UTF8.GetBytes(type, span[28..]);
        if (key is not null)
        {
            BinaryPrimitives.WriteInt32BigEndian(span[at..], keyLength);
            at += 4 + Encoding.UTF8.GetBytes(key, span[(at + 4)..]);
        }

        if (hasTrace)
        {
            trace.TraceId.CopyTo(span.Slice(at, 16));
            trace.SpanId.CopyTo(span.Slice(at + 16, 8));
            span[at + 24] = (byte)trace.TraceFlags;
            at += 25;
        }

        payload.CopyTo(span[at..]);
        return buffer;
    }

    /// <summary>Decodes an entry as returned inside a script reply: <c>[id, [field, value, ...]]</c>.</summary>
    public static StreamJob? FromScript(RedisResult entry, JobTypeRegistry registry)
    {
        if (entry.IsNull || entry.Length < 2)
        {
            return null; // deleted while pending
        }

        var id = (RedisValue)entry[0];
        var fields = entry[1];
        byte[]? data = null;
        if (fields.Length == 2)
        {
            data = (byte[]?)fields[1]; // the one field every writer (enqueue, replay) stores; anything else fails to decode
        }
        else
        {
            for (var i = 0; i + 1 < fields.Length; i += 2)
            {
                if ((string?)fields[i] == Field)
                {
                    data = (byte[]?)fields[i + 1];
                }
            }
        }

        return Decode(id, data, registry);
    }

    public static StreamJob Decode(RedisValue entryId, byte[]? data, JobTypeRegistry? registry)
    {
        try
        {
            var span = data.AsSpan();
            if (span.Length < 28 || span[0] != Version)
            {
                return Bad(entryId, "the entry is not a ChatScale job of a known version");
            }

            var flags = span[1];
            var enqueued = BinaryPrimitives.ReadInt64BigEndian(span[2..]);
            var jobId = new Guid(span.Slice(10, 16), bigEndian: true).ToString("N");
            int typeLength = BinaryPrimitives.ReadUInt16BigEndian(span[26..]);
            var type = Encoding.UTF8.GetString(span.Slice(28, typeLength));
            var at = 28 + typeLength;
            string? key = null;
            if ((flags & HasKey) != 0)
            {
                var keyLength = BinaryPrimitives.ReadInt32BigEndian(span[at..]);
                key = Encoding.UTF8.GetString(span.Slice(at + 4, keyLength));
                at += 4 + keyLength;
            }

            ActivityContext trace = default;
            if ((flags & HasTrace) != 0)
            {
                trace = new ActivityContext(
                    ActivityTraceId.CreateFromBytes(span.Slice(at, 16)), ActivitySpanId.CreateFromBytes(span.Slice(at + 16, 8)), (ActivityTraceFlags)span[at + 24], isRemote: true);
                at += 25;
            }

            return new StreamJob
            {
                EntryId = entryId,
                JobId = jobId,
                TypeName = type,
                Key = key,
                KeyHash = key is null ? 0 : OrderingKeyHash.Fnv1a(key),
                EnqueuedAt = DateTimeOffset.FromUnixTimeMilliseconds(enqueued),
                EnqueuedBy = trace,
                Payload = data.AsMemory(at),
                Registration = registry?.Find(type),
            };
        }
        catch (Exception ex) when (ex is ArgumentException or IndexOutOfRangeException or DecoderFallbackException)
        {
            return Bad(entryId, ex.Message);
        }
    }

    /// <summary>Applies an attempt record (<c>"attempts:next attempt ms"</c>) stored by a previous runner.</summary>
    public void ApplyRecord(RedisValue record, long serverNowMs)
    {
        if (record.IsNull)
        {
            return;
        }

        var text = (string)record!;
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0
            && int.TryParse(text.AsSpan(0, colon), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var attempts)
            && long.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var due))
        {
            Attempts = Math.Max(Attempts, attempts);
            Delay = due > serverNowMs ? TimeSpan.FromMilliseconds(due - serverNowMs) : TimeSpan.Zero;
        }
    }

    private static StreamJob Bad(RedisValue entryId, string reason)
        => new() { EntryId = entryId, JobId = (string)entryId!, TypeName = string.Empty, Malformed = $"Entry {entryId} cannot be decoded: {reason}." };
}
