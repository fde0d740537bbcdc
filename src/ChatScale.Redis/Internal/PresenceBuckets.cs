using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ChatScale.Dispatching;

namespace ChatScale.Redis.Internal;

/// <summary>
/// How presence is spread over Redis Cluster slots: every user belongs to one of <see cref="Count"/> buckets (a stable
/// hash of the user id), and each bucket has its own hash tag, chosen so that bucket <c>b</c> lands in the slot range
/// <c>[b * 16384 / Count, (b + 1) * 16384 / Count)</c>. A cluster whose masters own even slot ranges (what
/// <c>redis-cli --cluster create</c> and rebalancing produce) therefore holds an even share of the buckets.
/// </summary>
/// <remarks>
/// The tag of a bucket is <c>{P:pr:b:k}</c> with the smallest <c>k</c> whose CRC16 slot falls in the bucket's range: a
/// pure function of the prefix, so every node (and every version using this layout) computes the same keys.
/// </remarks>
internal static class PresenceBuckets
{
    /// <summary>The number of presence buckets. Part of the stored layout: every node of a deployment must agree.</summary>
    public const int Count = 128;

    private const int Slots = 16384;

    private static readonly ConcurrentDictionary<string, string[]> TagsByPrefix = new(StringComparer.Ordinal);

    /// <summary>The bucket of <paramref name="userId"/>.</summary>
    public static int Of(string userId) => (int)(OrderingKeyHash.Fnv1a(userId) % Count);

    /// <summary>The hash tags (with braces) of every bucket of <paramref name="prefix"/>.</summary>
    public static string[] Tags(string prefix) => TagsByPrefix.GetOrAdd(prefix, static p =>
    {
        var tags = new string[Count];
        var width = Slots / Count;
        for (var b = 0; b < Count; b++)
        {
            for (var k = 0; ; k++)
            {
                var inner = string.Create(CultureInfo.InvariantCulture, $"{p}:pr:{b}:{k}");
                if (Slot(Encoding.UTF8.GetBytes(inner)) / width == b)
                {
                    tags[b] = "{" + inner + "}";
                    break;
                }
            }
        }

        return tags;
    });

    /// <summary>The cluster slot of a key whose hash tag content is <paramref name="tag"/> (CRC16-XMODEM mod 16384).</summary>
    public static int Slot(ReadOnlySpan<byte> tag)
    {
        ushort crc = 0;
        foreach (var b in tag)
        {
            crc ^= (ushort)(b << 8);
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 0x8000) != 0 ? (ushort)((crc << 1) ^ 0x1021) : (ushort)(crc << 1);
            }
        }

        return crc % Slots;
    }

    /// <summary>
    /// A connection id's contribution to its bucket's digest: the first 4 bytes of SHA-1 of its UTF-8, as a signed
    /// 32-bit integer, exactly what the scripts compute with <c>redis.sha1hex</c> and <c>bit.bxor</c>. A set's digest
    /// is the XOR of its members', so adding and removing are O(1) on both sides.
    /// </summary>
    public static int Digest(string connectionId)
    {
        var utf8 = Encoding.UTF8.GetBytes(connectionId);
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
#pragma warning disable CA5350 // Not a security use: it must equal the scripts' redis.sha1hex, the only hash Lua has.
        SHA1.HashData(utf8, hash);
#pragma warning restore CA5350
        return BinaryPrimitives.ReadInt32BigEndian(hash);
    }
}
