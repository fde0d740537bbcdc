using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace ChatScale.LoadTest;

/// <summary>
/// The <c>floor</c> verb: what the HTTP POST alone costs a node. The nodes run with <c>--floor</c>, so
/// <c>POST /send</c> reads the group and the body exactly as in <c>run</c> and returns 202 without publishing; the
/// users stay connected (idle) as in <c>run</c>, and the driver sends the same bodies from the same number of senders.
/// Server CPU per POST, divided by the group size, is the part of <c>run</c>'s CPU per delivery that neither system's
/// fan-out can remove.
/// </summary>
/// <remarks>
/// <c>--rate R</c> paces the POSTs at R per second over all nodes (what <c>run</c> reached, e.g. deliveries/s divided by
/// the group size), since a saturated floor batches more per wake-up than a paced one; without it the senders go as
/// fast as the nodes answer.
/// </remarks>
internal static class Floor
{
    private const int IdleSeconds = 10;

    public static async Task<int> RunAsync(Args args)
    {
        var systems = args.Get("systems", "chatscale,signalr").Split(',');
        var runs = args.GetInt("runs", 1);
        var nodes = args.GetInt("nodes", 2);
        var users = args.GetInt("users", 1000);
        var groupSize = args.GetInt("group", 5);
        var messages = args.GetInt("messages", 100_000);
        var warmupSeconds = args.GetInt("warmup-seconds", 30);
        var concurrency = args.GetInt("concurrency", 16);
        var rate = args.GetInt("rate", 0);
        var groups = new Groups(users, groupSize);
        var rows = new StringBuilder();
        rows.AppendLine("| System | Run | POSTs | POSTs/s | Server CPU s | CPU µs per POST | = µs per delivery at groups of " + groupSize.ToString(CultureInfo.InvariantCulture) + " | Idle node CPU, ms/s | µs per POST net of idle | HTTP errors |");
        rows.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        await using var cluster = await Cluster.StartRedisAsync();
        for (var run = 1; run <= runs; run++)
        {
            foreach (var system in run % 2 == 1 ? systems : systems.Reverse().ToArray())
            {
                await cluster.StartNodesAsync(system, nodes, users, "--floor");
                var signalR = system == "signalr";
                var clients = new LoadClient[users];
                using var invoker = LoadClient.CreateInvoker();
                using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Math.Max(concurrency, 64), UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
                await Parallel.ForEachAsync(Enumerable.Range(0, users), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
                {
                    var port = cluster.NodePorts[i % nodes];
                    clients[i] = await LoadClient.ConnectAsync(i, new Uri($"ws://127.0.0.1:{port}{(signalR ? "/hub" : "/ws")}"), signalR, invoker, 4096, ct);
                });

                try
                {
                    Console.Error.WriteLine($"{system}: floor warm-up, {warmupSeconds} s");
                    var warm = Stopwatch.StartNew();
                    var sequence = 0;
                    while (warm.Elapsed.TotalSeconds < warmupSeconds)
                    {
                        await PostAllAsync(http, cluster, groups, sequence, sequence + 2_000, concurrency, rate);
                        sequence += 2_000;
                    }

                    // What the nodes spend with nothing sent (heartbeats, keep-alives, background loops), so the
                    // per-POST figure can be read net of it.
                    var idle0 = cluster.NodesCpuSeconds();
                    var idleClock = Stopwatch.StartNew();
                    await Task.Delay(TimeSpan.FromSeconds(IdleSeconds));
                    var idleCores = (cluster.NodesCpuSeconds() - idle0) / idleClock.Elapsed.TotalSeconds;

                    var cpu0 = cluster.NodesCpuSeconds();
                    var start = Stopwatch.GetTimestamp();
                    var errors = await PostAllAsync(http, cluster, groups, 0, messages, concurrency, rate);
                    var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    var cpu = cluster.NodesCpuSeconds() - cpu0;
                    var perPost = cpu * 1e6 / messages;
                    var netPerPost = (cpu - (idleCores * elapsed)) * 1e6 / messages;
                    var line = string.Create(CultureInfo.InvariantCulture, $"| {system} | {run} | {messages:N0} | {messages / elapsed:N0} | {cpu:F2} | {perPost:F2} | {perPost / groupSize:F2} | {idleCores * 1000:F1} | {netPerPost:F2} | {errors} |");
                    Console.Error.WriteLine(line);
                    rows.AppendLine(line);
                }
                finally
                {
                    await Parallel.ForEachAsync(clients.Where(c => c is not null), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (c, _) => await c.DisposeAsync());
                    await cluster.StopNodesAsync();
                }
            }
        }

        Console.WriteLine(rows.ToString());
        return 0;
    }

    // Posts messages [from, to) with `concurrency` senders, round-robin over the nodes, paced at `rate` per second if set.
    private static async Task<long> PostAllAsync(HttpClient http, Cluster cluster, Groups groups, int from, int to, int concurrency, int rate)
    {
        var next = from - 1;
        long errors = 0;
        var start = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var seq = Interlocked.Increment(ref next);
                if (seq >= to)
                {
                    return;
                }

                if (rate > 0)
                {
                    var due = start + (long)((seq - from) / (double)rate * Stopwatch.Frequency);
                    var wait = due - Stopwatch.GetTimestamp();
                    if (wait > Stopwatch.Frequency / 1000)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency));
                    }
                }

                using var content = new ByteArrayContent(Scenario.MessageBody(seq, Stopwatch.GetTimestamp()));
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                try
                {
                    var port = cluster.NodePorts[seq % cluster.NodePorts.Count];
                    using var response = await http.PostAsync(new Uri($"http://127.0.0.1:{port}/send?g={seq % groups.Count}&s={groups.Size}"), content);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        return errors;
    }
}
