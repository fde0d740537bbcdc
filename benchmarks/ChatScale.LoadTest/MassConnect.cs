using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace ChatScale.LoadTest;

/// <summary>
/// The <c>massconnect</c> verb: U users connect over the nodes as fast as the driver can open sockets, and 1 s after
/// the last connect completed, one message goes to every group (each user is in exactly one): no readiness round, so
/// a delivery is lost when a system accepted a connection before it could route messages to it. A second wave 5 s
/// later shows whether the gap closes.
/// </summary>
internal static class MassConnect
{
    public static async Task<int> RunAsync(Args args)
    {
        var systems = args.Get("systems", "chatscale,signalr").Split(',');
        var users = args.GetInt("users", 10_000);
        var nodes = args.GetInt("nodes", 2);
        var size = args.GetInt("group", 50);
        var runs = args.GetInt("runs", 1);
        var groups = new Groups(users, size);
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"| System | Run | Users | Connect time s | Lost of first wave (1 s after last connect) | Lost of second wave (+5 s) | Client faults |"),
            "|---|--:|--:|--:|--:|--:|--:|",
        };
        var json = new List<object>();
        await using var cluster = await Cluster.StartRedisAsync();
        for (var run = 1; run <= runs; run++)
        {
            foreach (var system in run % 2 == 1 ? systems : systems.Reverse().ToArray())
            {
                await cluster.StartNodesAsync(system, nodes, users);
                var signalR = system == "signalr";
                var clients = new LoadClient[users];
                using var invoker = LoadClient.CreateInvoker();
                using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 16, UseProxy = false });
                var connect = Stopwatch.StartNew();
                await Parallel.ForEachAsync(Enumerable.Range(0, users), new ParallelOptions { MaxDegreeOfParallelism = 128 }, async (i, ct) =>
                {
                    var port = cluster.NodePorts[i % nodes];
                    clients[i] = await LoadClient.ConnectAsync(i, new Uri($"ws://127.0.0.1:{port}{(signalR ? "/hub" : "/ws")}"), signalR, invoker, 1024, ct);
                });
                connect.Stop();
                await Task.Delay(TimeSpan.FromSeconds(1));

                var lost = new long[2];
                for (var wave = 0; wave < 2; wave++)
                {
                    var recorder = new Recorder(groups.Count, 0, size, null);
                    foreach (var c in clients)
                    {
                        c.Recorder = recorder;
                    }

                    await Parallel.ForEachAsync(Enumerable.Range(0, groups.Count), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (g, ct) =>
                    {
                        var body = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{{\"s\":{g},\"t\":{Stopwatch.GetTimestamp()}}}"));
                        using var content = new ByteArrayContent(body);
                        using var response = await http.PostAsync(new Uri($"http://127.0.0.1:{cluster.NodePorts[g % nodes]}/send?g={g}&s={size}"), content, ct);
                    });

                    var quiet = Stopwatch.StartNew();
                    var last = -1L;
                    while (recorder.Delivered < (long)groups.Count * size && quiet.Elapsed < TimeSpan.FromSeconds(3))
                    {
                        if (recorder.Delivered != last)
                        {
                            last = recorder.Delivered;
                            quiet.Restart();
                        }

                        await Task.Delay(20);
                    }

                    lost[wave] = recorder.Lost(0, groups.Count);
                    if (wave == 0)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(5));
                    }
                }

                var faults = clients.Count(c => c.Faulted);
                Console.Error.WriteLine($"{system} run {run}: {users} users connected in {connect.Elapsed.TotalSeconds:F1} s; lost {lost[0]} of the first wave, {lost[1]} of the second; {faults} client faults");
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"| {system} | {run} | {users:N0} | {connect.Elapsed.TotalSeconds:F1} | {lost[0]:N0} of {groups.Count * size:N0} | {lost[1]:N0} | {faults} |"));
                json.Add(new { system, run, users, connectSeconds = connect.Elapsed.TotalSeconds, lostFirstWave = lost[0], lostSecondWave = lost[1], faults });
                await Parallel.ForEachAsync(clients, new ParallelOptions { MaxDegreeOfParallelism = 128 }, async (c, _) => await c.DisposeAsync());
                await cluster.StopNodesAsync();
            }
        }

        var outDir = args.Get("out", "benchmarks/loadtest-results");
        Directory.CreateDirectory(outDir);
        await File.WriteAllTextAsync(Path.Combine(outDir, "massconnect.json"), JsonSerializer.Serialize(json));
        var table = string.Join('\n', lines) + "\n";
        await File.WriteAllTextAsync(Path.Combine(outDir, "massconnect.md"), table);
        if (args.Get("doc", string.Empty) is { Length: > 0 } doc)
        {
            Report.ReplaceSection(doc, "massconnect", string.Create(CultureInfo.InvariantCulture, $"Generated by `massconnect` at {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.\n\n") + table);
        }

        Console.WriteLine(table);
        return 0;
    }
}
