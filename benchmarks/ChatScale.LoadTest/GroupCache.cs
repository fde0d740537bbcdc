using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace ChatScale.LoadTest;

/// <summary>A node's cache of the scenario's groups, so turning a query into a recipient list costs both systems the same.</summary>
internal sealed class GroupCache(int users)
{
    private readonly ConcurrentDictionary<int, Groups> _bySize = new();

    public string[] Get(HttpRequest request)
    {
        var (group, size) = Parse(request);
        return Get(group, size);
    }

    public string[] Get(int group, int size) => _bySize.GetOrAdd(size, s => new Groups(users, s))[group];

    /// <summary>The IGroupManager group that holds the same users as recipient list <paramref name="group"/> of <paramref name="size"/>.</summary>
    public static string GroupName(int group, int size) => string.Create(CultureInfo.InvariantCulture, $"bench-g{group}-s{size}");

    public static (int Group, int Size) Parse(HttpRequest request)
        => (int.Parse(request.Query["g"].ToString(), CultureInfo.InvariantCulture), int.Parse(request.Query["s"].ToString(), CultureInfo.InvariantCulture));
}
