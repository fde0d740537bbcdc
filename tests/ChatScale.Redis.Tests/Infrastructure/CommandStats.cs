using System.Globalization;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>Reads <c>INFO commandstats</c>: how many times each command has run on a server.</summary>
public static class CommandStats
{
    public static async Task<Dictionary<string, long>> SnapshotAsync(IServer server)
    {
        var calls = new Dictionary<string, long>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in await server.InfoAsync("commandstats"))
        {
            foreach (var pair in section)
            {
                // cmdstat_publish: calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0
                var name = pair.Key.StartsWith("cmdstat_", StringComparison.Ordinal) ? pair.Key["cmdstat_".Length..] : pair.Key;
                foreach (var field in pair.Value.Split(','))
                {
                    if (field.StartsWith("calls=", StringComparison.Ordinal))
                    {
                        calls[name] = long.Parse(field["calls=".Length..], CultureInfo.InvariantCulture);
                    }
                }
            }
        }

        return calls;
    }

    public static async Task<Dictionary<string, long>> SnapshotAsync(IEnumerable<IServer> servers)
    {
        var total = new Dictionary<string, long>(StringComparer.OrdinalIgnoreCase);
        foreach (var server in servers)
        {
            foreach (var pair in await SnapshotAsync(server))
            {
                total[pair.Key] = total.GetValueOrDefault(pair.Key) + pair.Value;
            }
        }

        return total;
    }

    /// <summary>after - before, for every command that ran in between.</summary>
    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after)
        => after.Select(p => (p.Key, Value: p.Value - before.GetValueOrDefault(p.Key)))
            .Where(p => p.Value != 0)
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.OrdinalIgnoreCase);

    public static string Format(Dictionary<string, long> delta)
        => string.Join(", ", delta.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));
}
