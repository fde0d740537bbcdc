using System.Globalization;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// The process's open-file limit (the soft <c>RLIMIT_NOFILE</c>), read once at start from <c>/proc/self/limits</c>.
/// Every socket is a file descriptor, so this is the hard ceiling on connections: past it <c>accept</c> fails with
/// EMFILE, and a node that keeps accepting spins on that error instead of serving.
/// </summary>
/// <param name="Limit">The soft limit.</param>
/// <param name="OpenAtStart">Descriptors open when the budget was taken.</param>
/// <param name="WebSockets">The default per-node WebSocket cap.</param>
/// <param name="Http">The default Kestrel cap on connections not upgraded.</param>
internal sealed record FileBudget(long Limit, int OpenAtStart, int WebSockets, long Http);

/// <summary>Reads the process's open-file limit (see <see cref="FileBudget"/>).</summary>
internal static class FileDescriptorLimit
{
    private const string LimitsFile = "/proc/self/limits";
    private const string OpenFiles = "Max open files";

    // Descriptors the process may still open after the snapshot: 128, plus half as many again as were open then
    // (assemblies load lazily: a web app's count grows by a third after start), Redis and database connections (a
    // MongoDB pool alone may grow to 100), log files, and sockets Kestrel accepts past its limit before closing them
    // during a flood. Measured: with less (a flat 128 at ulimit -n 512) a flood of idle sockets made the runtime
    // abort ("Out of memory.", its message when it cannot get a descriptor).
    internal static int GrowthMargin(int openNow) => 128 + (openNow / 2);

    private static readonly Lazy<FileBudget?> Snapshot = new(() => SoftLimit is { } limit ? Split(limit, CountOpen()) : null);

    /// <summary>The soft limit, or null where it is unknown (not Linux) or unlimited.</summary>
    public static long? SoftLimit { get; } = Read();

    /// <summary>
    /// How the descriptors left once the process is up are shared, decided once (on first use, when the host starts):
    /// what is free beyond those open then (a .NET web app holds ~250 at start, one per loaded assembly) and
    /// <see cref="GrowthMargin"/>: two thirds for WebSocket connections (the default
    /// <see cref="ChatScaleEndpointOptions.MaxConnections"/>), one third for HTTP connections not (yet) upgraded
    /// (Kestrel's <c>MaxConcurrentConnections</c> when the host left it unset). Null where the limit is unknown.
    /// </summary>
    public static FileBudget? Budget => Snapshot.Value;

    internal static FileBudget Split(long limit, int openNow)
    {
        var headroom = Math.Max(3, limit - openNow - GrowthMargin(openNow));
        return new FileBudget(limit, openNow, (int)Math.Min(headroom * 2 / 3, int.MaxValue), headroom / 3);
    }

    private static int CountOpen()
    {
        try
        {
            return Directory.GetFileSystemEntries("/proc/self/fd").Length;
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
    }

    internal static long? Parse(string limits)
    {
        foreach (var line in limits.AsSpan().EnumerateLines())
        {
            if (!line.StartsWith(OpenFiles, StringComparison.Ordinal))
            {
                continue;
            }

            // "Max open files            1024                 1048576              files"
            var rest = line[OpenFiles.Length..].TrimStart();
            var end = rest.IndexOf(' ');
            var soft = end < 0 ? rest : rest[..end];
            return long.TryParse(soft, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0 ? value : null;
        }

        return null;
    }

    private static long? Read()
    {
        try
        {
            return OperatingSystem.IsLinux() && File.Exists(LimitsFile) ? Parse(File.ReadAllText(LimitsFile)) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
