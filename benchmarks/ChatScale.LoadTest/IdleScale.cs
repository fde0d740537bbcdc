using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;

namespace ChatScale.LoadTest;

/// <summary>
/// The <c>idle</c> verb: how many idle WebSocket connections one node holds, and the memory each costs. Clients bind
/// to several 127.0.0.x source addresses (past the ~28,000 ephemeral ports per address pair). Steps of 1,000
/// connections; after each 5,000 the node runs a full GC and reports its managed heap, and RSS is read from /proc.
/// Stops at --max, at the first step with failed connects, when the node dies, or after --minutes.
/// </summary>
internal static class IdleScale
{
    public static async Task<int> RunAsync(Args args)
    {
        var systems = args.Get("systems", "chatscale,signalr").Split(',');
        var max = args.GetInt("max", 50_000);
        var addresses = Enumerable.Range(1, args.GetInt("source-addresses", 4)).Select(i => IPAddress.Parse($"127.0.0.{i}")).ToList();
        var limit = TimeSpan.FromMinutes(args.GetInt("minutes", 5));
        var lines = new List<string>
        {
            "| System | Connections held at the end | Stopped because | RSS MiB at 10 | Last measured at | RSS MiB there | RSS KiB per connection | Managed heap KiB per connection (after full GC) |",
            "|---|--:|---|--:|--:|--:|--:|--:|",
        };
        var json = new List<object>();
        await using var cluster = await Cluster.StartRedisAsync();
        foreach (var system in systems)
        {
            await cluster.StartNodesAsync(system, 1, max);
            var pid = cluster.NodePids[0];
            var port = cluster.NodePorts[0];
            var signalR = system == "signalr";
            var uri = new Uri($"ws://127.0.0.1:{port}{(signalR ? "/hub" : "/ws")}");
            using var invoker = LoadClient.CreateInvoker(addresses);
            using var http = new HttpClient();
            var clients = new List<LoadClient>();
            var clock = Stopwatch.StartNew();

            // Baseline: a few connections so every code path is warm, then a full GC.
            for (var i = 0; i < 10; i++)
            {
                clients.Add(await LoadClient.ConnectAsync(i, uri, signalR, invoker, 256, CancellationToken.None));
            }

            var (rss0, heap0) = await MeasureAsync(http, port, pid);
            var (rss, heap) = (rss0, heap0);
            var measuredAt = clients.Count;
            var reason = $"reached --max {max:N0}";
            while (clients.Count < max)
            {
                var from = clients.Count;
                var step = Math.Min(1000, max - from);
                var made = new LoadClient?[step];
                var failures = 0;
                Exception? firstError = null;
                await Parallel.ForEachAsync(Enumerable.Range(0, step), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (k, ct) =>
                {
                    try
                    {
                        made[k] = await LoadClient.ConnectAsync(from + k, uri, signalR, invoker, 256, ct);
                    }
                    catch (Exception ex) when (ex is System.Net.WebSockets.WebSocketException or HttpRequestException or IOException or System.Net.Sockets.SocketException)
                    {
                        Interlocked.Increment(ref failures);
                        firstError ??= ex;
                    }
                });
                clients.AddRange(made.Where(c => c is not null)!);
                if (!File.Exists($"/proc/{pid}/status"))
                {
                    reason = $"the node process died at {clients.Count:N0} connections (see its stderr above)";
                    break;
                }

                if (clients.Count % 5000 < 1000 || failures > 0)
                {
                    var (r, h) = await MeasureAsync(http, port, pid);
                    if (h > 0)
                    {
                        (rss, heap, measuredAt) = (r, h, clients.Count);
                    }

                    Console.Error.WriteLine($"{system}: {clients.Count:N0} connections, RSS {rss / 1048576.0:F0} MiB, managed heap {heap / 1048576.0:F0} MiB");
                }

                if (failures > 0)
                {
                    reason = $"{failures} connects failed at {clients.Count:N0}: {firstError?.GetBaseException().Message}";
                    break;
                }

                if (clock.Elapsed > limit)
                {
                    reason = $"time limit {limit.TotalMinutes} min";
                    break;
                }
            }

            await Task.Delay(1000);
            var held = clients.Count(c => c.State == System.Net.WebSockets.WebSocketState.Open);
            if (File.Exists($"/proc/{pid}/status"))
            {
                var (r, h) = await MeasureAsync(http, port, pid);
                if (h > 0)
                {
                    (rss, heap, measuredAt) = (r, h, held);
                }
            }

            var perRss = (rss - rss0) / 1024.0 / Math.Max(1, measuredAt - 10);
            var perHeap = (heap - heap0) / 1024.0 / Math.Max(1, measuredAt - 10);
            Console.Error.WriteLine($"{system}: held {held:N0}; {reason}; {perRss:F1} KiB RSS, {perHeap:F1} KiB managed heap per connection");
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"| {system} | {held:N0} | {reason} | {rss0 / 1048576.0:F0} | {measuredAt:N0} | {rss / 1048576.0:F0} | {perRss:F1} | {perHeap:F1} |"));
            json.Add(new { system, held, reason, rss0, rss, heap0, heap, perRssKiB = perRss, perHeapKiB = perHeap });
            await Parallel.ForEachAsync(clients, new ParallelOptions { MaxDegreeOfParallelism = 128 }, async (c, _) => await c.DisposeAsync());
            await cluster.StopNodesAsync();
        }

        var outDir = args.Get("out", "benchmarks/loadtest-results");
        Directory.CreateDirectory(outDir);
        await File.WriteAllTextAsync(Path.Combine(outDir, "idle.json"), JsonSerializer.Serialize(json));
        var table = string.Join('\n', lines) + "\n";
        await File.WriteAllTextAsync(Path.Combine(outDir, "idle.md"), table);
        if (args.Get("doc", string.Empty) is { Length: > 0 } doc)
        {
            Report.ReplaceSection(doc, "idle", string.Create(CultureInfo.InvariantCulture, $"Generated by `idle` at {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.\n\n") + table);
        }

        Console.WriteLine(table);
        return 0;
    }

    private static async Task<(long Rss, long Heap)> MeasureAsync(HttpClient http, int port, int pid)
    {
        try
        {
            using var response = await http.PostAsync(new Uri($"http://127.0.0.1:{port}/gc"), null);
            var heap = long.Parse(await response.Content.ReadAsStringAsync(), CultureInfo.InvariantCulture);
            await Task.Delay(200);
            return (ProcStats.StatusBytes(pid, "VmRSS"), heap);
        }
        catch (HttpRequestException)
        {
            return (ProcStats.StatusBytes(pid, "VmRSS"), 0);
        }
    }
}
