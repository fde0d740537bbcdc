using System.Globalization;

namespace ChatScale.LoadTest;

/// <summary>Command line: a verb, then <c>--name value</c> pairs and <c>--flag</c> switches.</summary>
internal sealed class Args
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public Args(string[] args)
    {
        var i = 0;
        if (args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal))
        {
            Verb = args[0];
            i = 1;
        }

        for (; i < args.Length; i++)
        {
            var name = args[i].TrimStart('-');
            if (i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                _values[name] = args[++i];
            }
            else
            {
                _values[name] = "true";
            }
        }
    }

    public string Verb { get; } = "run";

    public bool Has(string name) => _values.ContainsKey(name);

    public string Get(string name, string fallback) => _values.TryGetValue(name, out var v) ? v : fallback;

    public int GetInt(string name, int fallback) => _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public int[] GetInts(string name, string fallback)
        => Get(name, fallback).Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
}
