using System.Text;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Which live instance owns which partition: rendezvous (highest-random-weight) hashing. Every instance computes the
/// same answer from the same member list, and when one of N instances joins or leaves only the partitions it wins or
/// held move (about 1/N of them), instead of nearly all of them as with <c>partition mod N</c>.
/// </summary>
internal static class RendezvousAssignment
{
    /// <summary>The owner of <paramref name="partition"/> among <paramref name="members"/>; <see langword="null"/> when there are none.</summary>
    public static string? Owner(int partition, IReadOnlyList<string> members)
    {
        string? best = null;
        ulong bestScore = 0;
        for (var i = 0; i < members.Count; i++)
        {
            var score = Score(members[i], partition);
            if (best is null || score > bestScore || (score == bestScore && string.CompareOrdinal(members[i], best) > 0))
            {
                best = members[i];
                bestScore = score;
            }
        }

        return best;
    }

    private static ulong Score(string member, int partition)
    {
        // FNV-1a 64 of the member id, mixed with the partition through a SplitMix64 finalizer.
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(member))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        var z = hash ^ ((ulong)(uint)partition * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
