using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ChatScale.LoadTest;

/// <summary>The <c>run</c> and <c>compare</c> verbs.</summary>
internal static class Driver
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static async Task<int> RunAsync(Args args)
    {
        var systems = args.Get("systems", "chatscale,signalr").Split(',');
        var runs = args.GetInt("runs", 1);
        var results = new List<RunResult>();
        await using var cluster = args.Has("redis-cluster") ? await Cluster.StartRedisClusterAsync() : await Cluster.StartRedisAsync();
        for (var run = 1; run <= runs; run++)
        {
            // Alternate which system goes first, so neither always gets the cooler machine.
            var order = run % 2 == 1 ? systems : systems.Reverse().ToArray();
            foreach (var system in order)
            {
                var result = await Build(args, system, run, args.GetInt("group", 50)).ExecuteAsync(cluster);
                results.Add(result);
                Console.Error.WriteLine(Summary(result));
                if (cluster.MasterSamples.Count >= 2)
                {
                    Console.WriteLine(MasterShares(cluster.MasterSamples[^2], cluster.MasterSamples[^1], $"{system} run {run}"));
                }
            }
        }

        var outDir = args.Get("out", "benchmarks/loadtest-results");
        Directory.CreateDirectory(outDir);
        var stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        var jsonPath = Path.Combine(outDir, $"loadtest-{stamp}.json");
        await File.WriteAllTextAsync(jsonPath, JsonSerializer.Serialize(results, Json));
        var markdown = Report.Table(results);
        await File.WriteAllTextAsync(Path.ChangeExtension(jsonPath, ".md"), markdown);
        Console.WriteLine(markdown);
        Console.Error.WriteLine($"wrote {jsonPath} and {Path.ChangeExtension(jsonPath, ".md")}");
        return 0;
    }

    public static async Task<int> CompareAsync(Args args)
    {
        var systems = args.Get("systems", "chatscale,signalr").Split(',');
        var runs = args.GetInt("runs", 3);
        var groupSizes = args.GetInts("groups", "5,50,500");
        var results = new List<RunResult>();
        await using var cluster = await Cluster.StartRedisAsync();
        foreach (var group in groupSizes)
        {
            for (var run = 1; run <= runs; run++)
            {
                var order = run % 2 == 1 ? systems : systems.Reverse().ToArray();
                foreach (var system in order)
                {
                    var result = await Build(args, system, run, group).ExecuteAsync(cluster);
                    results.Add(result);
                    Console.Error.WriteLine(Summary(result));
                }
            }
        }

        var outDir = args.Get("out", "benchmarks/loadtest-results");
        Directory.CreateDirectory(outDir);
        var jsonPath = Path.Combine(outDir, "compare.json");
        await File.WriteAllTextAsync(jsonPath, JsonSerializer.Serialize(results, Json));
        var chart = args.Get("chart", "docs/img/loadtest-groups.png");
        Report.Chart(results, groupSizes, chart);
        var section = Report.CompareSection(results, groupSizes, args, chart);
        await File.WriteAllTextAsync(Path.Combine(outDir, "compare.md"), section);
        if (args.Get("doc", string.Empty) is { Length: > 0 } doc)
        {
            Report.ReplaceSection(doc, "loadtest", section);
        }

        Console.WriteLine(section);
        return 0;
    }

    /// <summary>Redraws the chart (and the doc section) from a saved compare.json.</summary>
    public static async Task<int> ChartAsync(Args args)
    {
        var results = JsonSerializer.Deserialize<List<RunResult>>(await File.ReadAllTextAsync(args.Get("from", "benchmarks/loadtest-results/compare.json")))!;
        var groupSizes = results.Select(r => r.GroupSize).Distinct().Order().ToArray();
        var chart = args.Get("chart", "docs/img/loadtest-groups.png");
        Report.Chart(results, groupSizes, chart);
        if (args.Get("doc", string.Empty) is { Length: > 0 } doc)
        {
            Report.ReplaceSection(doc, "loadtest", Report.CompareSection(results, groupSizes, args, chart));
        }

        return 0;
    }

    public static Scenario Build(Args args, string system, int run, int group)
    {
        var quick = args.Has("quick");

        // --cold: no warm-up beyond the readiness round; the measured phase is the first 100,000 deliveries after start.
        var cold = args.Has("cold");
        // "chatscale-dispatch" is the background-dispatch form as a system of its own, so one run compares it with
        // the direct form: --systems chatscale,chatscale-dispatch.
        var dispatch = system == "chatscale-dispatch" || (args.Has("dispatch") && system == "chatscale");
        // "chatscale-groups" publishes to a named group (IGroupManager, members stored in Redis) instead of sending the
        // same users as a list: --systems chatscale,chatscale-groups compares the two.
        var groupPublish = system == "chatscale-groups";
        return new Scenario
        {
            System = system is "chatscale-dispatch" or "chatscale-groups" ? "chatscale" : system,
            Run = run,
            BackgroundDispatch = dispatch,
            GroupPublish = groupPublish,
            Routing = args.Get("routing", "targeted"),
            Nodes = args.GetInt("nodes", 2),
            Users = args.GetInt("users", 1000),
            GroupSize = group,
            // Same number of deliveries whatever the group size (500,000 by default, 100,000 quick).
            Messages = args.GetInt("messages", Math.Max(200, (quick || cold ? 100_000 : 500_000) / group)),
            Warmup = cold ? 0 : args.GetInt("warmup", 1_000),
            WarmupSeconds = cold ? 0 : args.GetInt("warmup-seconds", quick ? 3 : 10),
            Cold = cold,
            Concurrency = args.GetInt("concurrency", 16),
            Window = args.GetInt("window", 64),
            Quiet = args.Has("quiet"),
            LatencyRate = args.GetInt("latency-rate", 10_000),
            LatencySeconds = args.GetInt("latency-seconds", quick ? 4 : 10),
            NodeDiagnostics = (args.Has("diag-no-jobs") ? "--no-jobs " : string.Empty) + (args.Has("diag-keepalive") ? $"--keepalive-seconds {args.GetInt("diag-keepalive", 15)}" : string.Empty),
            TimelineDir = args.Has("timeline") ? args.Get("timeline", "benchmarks/loadtest-results/timeline") : null,
        };
    }

    // Each master's share of the cluster's commands and CPU over the saturated phase (fair share: 1 / masters).
    private static string MasterShares((string EndPoint, long Calls, double CpuSeconds)[] before, (string EndPoint, long Calls, double CpuSeconds)[] after, string label)
    {
        var calls = after.Select((a, i) => a.Calls - before[i].Calls).ToArray();
        var cpu = after.Select((a, i) => a.CpuSeconds - before[i].CpuSeconds).ToArray();
        var text = new StringBuilder($"{label}: per master (commands, share, CPU s, share):");
        for (var i = 0; i < after.Length; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $" {after[i].EndPoint} {calls[i]:N0} {100.0 * calls[i] / Math.Max(1, calls.Sum()):F1}% {cpu[i]:F2} {100.0 * cpu[i] / Math.Max(1e-9, cpu.Sum()):F1}%;");
        }

        return text.ToString();
    }

    public static string Summary(RunResult r)
        => string.Create(CultureInfo.InvariantCulture, $"{r.System} run {r.Run} group {r.GroupSize}: {r.DeliveriesPerSecond:N0} deliveries/s, saturated e2e p99 {r.SaturatedE2eP99Ms:F1} ms; at {r.LatencyPhaseDeliveriesPerSecond:N0}/s e2e p50 {r.E2eP50Ms:F2} p99 {r.E2eP99Ms:F2} ms, http p99 {r.HttpP99Ms:F2} ms, {r.CpuMicrosPerDelivery:F2} µs CPU/delivery, {r.RedisCommandsPerMessage:F1} redis cmds/msg, lost {r.LostDeliveries}, driver CPU {r.DriverCpuShare:P0}, node JIT {r.NodeJitMethods:N0} methods {r.NodeJitMs:F0} ms, {r.NodeWorkItemsPerMessage:F1} thread-pool work items/msg");
}
