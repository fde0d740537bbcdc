using System.Text;

namespace ChatScale.Dispatching;

/// <summary>
/// Maps an ordering key to a lane. The hash is 32-bit FNV-1a over the key's UTF-8 bytes: unlike
/// <see cref="string.GetHashCode()"/> it is the same in every process and every .NET version, so any component that
/// partitions by key (in memory or in Redis) can agree on where a key lives.
/// </summary>
/// <remarks>
/// Public so that every dispatcher package (ChatScale.Redis, or a third-party one) shares this one definition instead
/// of copying it: a key must land in the same lane or partition no matter which package or node computes it.
/// </remarks>
public static class OrderingKeyHash
{
    private const uint OffsetBasis = 2166136261;
    private const uint Prime = 16777619;

    /// <summary>The 32-bit FNV-1a hash of the UTF-8 encoding of <paramref name="key"/> (lone surrogates encode as U+FFFD).</summary>
    /// <param name="key">The ordering key.</param>
    /// <returns>The hash.</returns>
    public static uint Fnv1a(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
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

    /// <summary>The lane (or partition) of <paramref name="key"/> among <paramref name="laneCount"/> lanes.</summary>
    /// <param name="key">The ordering key.</param>
    /// <param name="laneCount">How many lanes there are; greater than 0.</param>
    /// <returns>A lane in [0, <paramref name="laneCount"/>).</returns>
    public static int Lane(string key, int laneCount) => Lane(Fnv1a(key), laneCount);

    /// <summary>The lane (or partition) of a key whose <see cref="Fnv1a"/> hash is <paramref name="keyHash"/>, for a caller that needs the hash too.</summary>
    /// <param name="keyHash">The key's <see cref="Fnv1a"/> hash.</param>
    /// <param name="laneCount">How many lanes there are; greater than 0.</param>
    /// <returns>A lane in [0, <paramref name="laneCount"/>).</returns>
    public static int Lane(uint keyHash, int laneCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(laneCount);
        return (int)(keyHash % (uint)laneCount);
    }
}
