using System.Text;

namespace ChatScale.Dispatching;

/// <summary>
/// Maps an ordering key to a lane. The hash is 32-bit FNV-1a over the key's UTF-8 bytes: unlike
/// <see cref="string.GetHashCode()"/> it is the same in every process and every .NET version, so any component that
/// partitions by key (in memory or in Redis) can agree on where a key lives.
/// </summary>
internal static class OrderingKeyHash
{
    private const uint OffsetBasis = 2166136261;
    private const uint Prime = 16777619;

    /// <summary>The 32-bit FNV-1a hash of the UTF-8 encoding of <paramref name="key"/> (lone surrogates encode as U+FFFD).</summary>
    public static uint Fnv1a(string key)
    {
        var hash = OffsetBasis;
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in key.EnumerateRunes())
        {
            var count = rune.EncodeToUtf8(utf8);
            for (var i = 0; i < count; i++)
            {
                hash = (hash ^ utf8[i]) * Prime;
            }
        }

        return hash;
    }

    /// <summary>The lane of <paramref name="key"/> among <paramref name="laneCount"/> lanes.</summary>
    public static int Lane(string key, int laneCount) => (int)(Fnv1a(key) % (uint)laneCount);
}
