using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace ChatScale.LoadTest;

/// <summary>
/// One measured run of one system: start its nodes, connect the users, a readiness round (every user has received a
/// probe), a warm-up, then the measured messages; read CPU, memory and Redis command counts around the measured phase.
/// </summary>
internal sealed class Scenario
{
    private static readonly string Padding = new('x', 96);

    public required string System { get; init; }
    public bool BackgroundDispatch { get; init; }

    /// <summary>Publish with <c>IGroupManager.PublishToGroupAsync</c> to a group whose members were added before the clients connect.</summary>
    public bool GroupPublish { get; init; }

    /// <summary>ChatScale's routing mode: targeted (default: presence lookup, one PUBLISH per hosting node) or broadcast.</summary>
    public string Routing { get; init; } = "targeted";
    public int Nodes { get; init; } = 2;
    public int Users { get; init; } = 1000;
    public int GroupSize { get; init; } = 50;
    public int Messages { get; init; } = 20_000;
    public int Warmup { get; init; } = 1_000;

    public double WarmupSeconds { get; init; } = 10;

    /// <summary>The cold row: no warm-up, so the measured phase starts right after the readiness round.</summary>
    public bool Cold { get; init; }
    public int Concurrency { get; init; } = 16;
    public int Window { get; init; } = 64;
    public int Run { get; init; } = 1;

    /// <summary>Deliveries per second offered in the latency phase (open loop: sends on a fixed schedule).</summary>
    public int LatencyRate { get; init; } = 10_000;

    public double LatencySeconds { get; init; } = 10;

    /// <summary>Cap on HTTP sends per second in the latency phase, so small groups do not turn it into a request-rate test.</summary>
    public double MaxLatencyMessagesPerSecond { get; init; } = 1000;
    public bool Quiet { get; init; }

    /// <summary>Diagnostic (<c>--timeline DIR</c>): the latency phase's per-delivery and per-process timeline, see <see cref="TimelineDump"/>.</summary>
    public string? TimelineDir { get; init; }

    /// <summary>Diagnostic node options (<c>--diag-no-jobs</c>, <c>--diag-keepalive N</c>), passed to ChatScale's nodes.</summary>
    public string NodeDiagnostics { get; init; } = string.Empty;

    public async Task<RunResult> ExecuteAsync(Cluster cluster)
    {
        var groups = new Groups(Users, GroupSize);
        await cluster.StartNodesAsync(System, Nodes, Users, (System == "chatscale" ? $"--routing {Routing} {NodeDiagnostics}" : string.Empty) + (TimelineDir is null ? string.Empty : " --timeline"));
        var signalR = System == "signalr";
        var path = signalR ? "/hub" : "/ws";
        var clients = new LoadClient[Users];
        using var invoker = LoadClient.CreateInvoker();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Math.Max(Concurrency, 64), UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
        if (GroupPublish)
        {
            // Membership is stored once (by one node, before anyone connects), as an app would when a channel is made.
            Log($"{System}: adding {Users} users to {groups.Count} groups of {GroupSize}");
            using var setup = await http.PostAsync(new Uri($"http://127.0.0.1:{cluster.NodePorts[0]}/groups/setup?s={GroupSize}"), null);
            setup.EnsureSuccessStatusCode();
        }

        Log($"{System}: connecting {Users} users to {Nodes} nodes");
        await Parallel.ForEachAsync(Enumerable.Range(0, Users), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
        {
            var port = cluster.NodePorts[i % Nodes];
            clients[i] = await LoadClient.ConnectAsync(i, new Uri($"ws://127.0.0.1:{port}{path}"), signalR, invoker, 4096, ct);
        });

        try
        {
            var readiness = Stopwatch.StartNew();
            await ReadinessAsync(cluster, http, groups, clients);
            readiness.Stop();

            // Warm-up: at least Warmup messages and WarmupSeconds, so tiered compilation (and dynamic PGO's
            // instrumented tier) has settled before the measured phase; profiles showed the JIT still busy after 1,000.
            const int MaxWarmup = 1_000_000;
            using var warmWindow = new SemaphoreSlim(Window, int.MaxValue);
            var warmRecorder = new Recorder(MaxWarmup, MaxWarmup, GroupSize, warmWindow);
            foreach (var c in clients)
            {
                c.Recorder = warmRecorder;
            }

            Log($"{System}: warm-up, at least {Warmup} messages and {WarmupSeconds} s");
            var warmed = 0;
            var warmClock = Stopwatch.StartNew();
            while ((warmed < Warmup || warmClock.Elapsed.TotalSeconds < WarmupSeconds) && warmed < MaxWarmup)
            {
                var chunk = Math.Min(1000, MaxWarmup - warmed);
                await SendAsync(cluster, http, groups, warmRecorder, warmWindow, warmed, warmed + chunk, null, progress: false);
                warmed += chunk;
            }

            await WaitDeliveredAsync(warmRecorder, 0, warmed);
            var total = Messages;
            using var window = new SemaphoreSlim(Window, int.MaxValue);
            var recorder = new Recorder(total, 0, GroupSize, window);
            foreach (var c in clients)
            {
                c.Recorder = recorder;
            }

            var jit0 = await JitAsync(http, cluster);
            var cpu0 = cluster.NodesCpuSeconds();
            var redisCpu0 = cluster.RedisCpuSeconds();
            var driverCpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
            var stats0 = await cluster.CommandStatsAsync();
            var httpLatencies = new ConcurrentBag<long>();
            var start = Stopwatch.GetTimestamp();
            var errors = await SendAsync(cluster, http, groups, recorder, window, 0, total, httpLatencies);
            var sent = Stopwatch.GetTimestamp();
            await WaitDeliveredAsync(recorder, 0, total);
            var end = Math.Max(recorder.LastDelivery, sent);
            var cpu1 = cluster.NodesCpuSeconds();
            var jit1 = await JitAsync(http, cluster);
            var redisCpu1 = cluster.RedisCpuSeconds();
            var driverCpu1 = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
            var stats1 = await cluster.CommandStatsAsync();

            var delta = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase);
            foreach (var (name, calls) in stats1)
            {
                var d = calls - stats0.GetValueOrDefault(name);
                if (name is "info" || d == 0)
                {
                    continue;
                }

                delta[name] = Math.Round(d / (double)Messages, 3);
            }

            var deliveries = recorder.DeliveredBetween(0, total);
            var lost = recorder.Lost(0, total);
            var elapsed = (end - start) / (double)Stopwatch.Frequency;
            var (satP50, satP99, _) = recorder.Percentiles();
            var satHttp = httpLatencies.ToArray();
            Array.Sort(satHttp);

            // Latency phase: a fixed, unsaturated offered load, so the latencies are the systems' and not a queue's.
            var perSecond = Math.Clamp(LatencyRate / (double)GroupSize, 1.0, MaxLatencyMessagesPerSecond);
            var latencyMessages = (int)Math.Max(100, perSecond * LatencySeconds);
            using var latencyWindow = new SemaphoreSlim(int.MaxValue / 2, int.MaxValue);
            var latencyRecorder = new Recorder(latencyMessages, 0, GroupSize, null);
            foreach (var c in clients)
            {
                c.Recorder = latencyRecorder;
            }

            var latencyHttp = new ConcurrentBag<long>();
            var timeline = TimelineDir is null ? null : new TimelineDump(TimelineDir, System, Run, cluster, http);
            if (timeline is not null)
            {
                latencyRecorder.KeepTimeline();
                await timeline.BeforeAsync();
            }

            Log($"{System}: latency phase, {perSecond:F0} messages/s for {LatencySeconds} s");
            errors += await SendOpenLoopAsync(cluster, http, groups, latencyMessages, perSecond, latencyHttp, timeline?.Posts);
            await WaitDeliveredAsync(latencyRecorder, 0, latencyMessages);
            if (timeline is not null)
            {
                await timeline.AfterAsync(latencyRecorder, clients, TimeSpan.FromSeconds(15));
            }

            lost += latencyRecorder.Lost(0, latencyMessages);
            var (p50, p99, max) = latencyRecorder.Percentiles();
            var httpSorted = latencyHttp.ToArray();
            Array.Sort(httpSorted);
            var serverCpu = cpu1 - cpu0;
            var driverCpu = driverCpu1 - driverCpu0;
            var result = new RunResult
            {
                System = System,
                Mode = System != "chatscale" ? "direct" : (BackgroundDispatch ? "background-dispatch" : "direct") + (GroupPublish ? ", group (IGroupManager)" : string.Empty) + (Routing == "broadcast" ? ", broadcast" : string.Empty) + (Cold ? ", cold" : string.Empty),
                Run = Run,
                Nodes = Nodes,
                Users = Users,
                GroupSize = GroupSize,
                Messages = Messages,
                WarmupMessages = warmed,
                ExpectedDeliveries = (long)Messages * GroupSize,
                Deliveries = deliveries,
                LostDeliveries = lost,
                DuplicateDeliveries = recorder.Duplicates,
                ElapsedSeconds = Math.Round(elapsed, 3),
                DeliveriesPerSecond = Math.Round(deliveries / elapsed),
                E2eP50Ms = Math.Round(p50, 3),
                E2eP99Ms = Math.Round(p99, 3),
                E2eMaxMs = Math.Round(max, 3),
                HttpP50Ms = Math.Round(Percentile(httpSorted, 0.50), 3),
                HttpP99Ms = Math.Round(Percentile(httpSorted, 0.99), 3),
                HttpErrors = errors,
                SaturatedE2eP50Ms = Math.Round(satP50, 3),
                SaturatedE2eP99Ms = Math.Round(satP99, 3),
                SaturatedHttpP99Ms = Math.Round(Percentile(satHttp, 0.99), 3),
                LatencyPhaseDeliveriesPerSecond = Math.Round(perSecond * GroupSize),
                RedisCommandsPerMessage = Math.Round(delta.Values.Sum(), 3),
                RedisPublishesPerMessage = delta.GetValueOrDefault("publish") + delta.GetValueOrDefault("spublish"),
                RedisCommandsPerMessageByName = delta,
                ServerCpuSeconds = Math.Round(serverCpu, 2),
                CpuMicrosPerDelivery = deliveries == 0 ? 0 : Math.Round(serverCpu * 1e6 / deliveries, 2),
                RedisCpuSeconds = Math.Round(redisCpu1 - redisCpu0, 2),
                DriverCpuSeconds = Math.Round(driverCpu, 2),
                DriverCpuShare = Math.Round(driverCpu / Math.Max(1e-9, driverCpu + serverCpu + (redisCpu1 - redisCpu0)), 3),
                ServerPeakRssMiB = Math.Round(cluster.NodesPeakRss() / 1048576.0, 1),
                ClientFaults = clients.Count(c => c.Faulted),
                ReadinessSeconds = Math.Round(readiness.Elapsed.TotalSeconds, 2),
                NodeJitMethods = jit1.Methods - jit0.Methods,
                NodeJitMs = Math.Round(jit1.Ms - jit0.Ms, 1),
                NodeWorkItemsPerMessage = Math.Round((jit1.WorkItems - jit0.WorkItems) / (double)Messages, 2),
            };
            return result;
        }
        finally
        {
            await Parallel.ForEachAsync(clients.Where(c => c is not null), new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (c, _) => await c.DisposeAsync());
            await cluster.StopNodesAsync();
        }
    }

    // Methods and milliseconds the nodes' JIT compiled so far, and the thread-pool work items they ran, summed over the nodes.
    private static async Task<(long Methods, double Ms, long WorkItems)> JitAsync(HttpClient http, Cluster cluster)
    {
        var (methods, ms, items) = (0L, 0.0, 0L);
        foreach (var port in cluster.NodePorts)
        {
            var parts = (await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/jit"))).Split(' ');
            methods += long.Parse(parts[0], CultureInfo.InvariantCulture);
            ms += double.Parse(parts[1], CultureInfo.InvariantCulture);
            items += long.Parse(parts[2], CultureInfo.InvariantCulture);
        }

        return (methods, ms, items);
    }

    /// <summary>A measured message's body: its sequence number, the send timestamp and a fixed padding (~130 bytes).</summary>
    internal static byte[] MessageBody(long seq, long timestamp)
        => Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{{\"s\":{seq},\"t\":{timestamp},\"p\":\"{Padding}\"}}"));

    internal static double Percentile(long[] sorted, double q)
        => sorted.Length == 0 ? 0 : Recorder.Ms(sorted[Math.Min(sorted.Length - 1, (int)(sorted.Length * q))]);

    /// <summary>Probes every group that still has a user without one, until every user has received a probe.</summary>
    internal async Task ReadinessAsync(Cluster cluster, HttpClient http, Groups groups, LoadClient[] clients)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var missing = new List<int>();
            for (var g = 0; g < groups.Count; g++)
            {
                var members = groups[g];
                for (var j = 0; j < members.Length; j++)
                {
                    if (!clients[((g * groups.Size) + j) % groups.Users].Probed)
                    {
                        missing.Add(g);
                        break;
                    }
                }
            }

            if (missing.Count == 0)
            {
                Log($"{System}: readiness round done in {deadline.Elapsed.TotalSeconds:F1} s");
                return;
            }

            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"{System}: {missing.Count} groups still have users without a probe after 60 s");
            }

            await Parallel.ForEachAsync(missing, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (g, ct) =>
            {
                var body = Encoding.UTF8.GetBytes("{\"s\":-1,\"t\":0}");
                await PostAsync(http, cluster.NodePorts[g % cluster.NodePorts.Count], g, groups.Size, body, ct);
            });
            await Task.Delay(200);
        }
    }

    private async Task<long> SendAsync(Cluster cluster, HttpClient http, Groups groups, Recorder recorder, SemaphoreSlim window, int from, int to, ConcurrentBag<long>? latencies, bool progress = true)
    {
        var next = from - 1;
        long errors = 0;
        using var bar = Quiet || !progress ? null : new Progress(System, from, to, recorder, GroupSize);
        var workers = Enumerable.Range(0, Concurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var seq = Interlocked.Increment(ref next);
                if (seq >= to)
                {
                    return;
                }

                // At most Window messages sent but not yet fully delivered; a lost delivery costs one second.
                await window.WaitAsync(TimeSpan.FromSeconds(1));
                var t0 = Stopwatch.GetTimestamp();
                var body = MessageBody(seq, t0);
                var ok = await PostAsync(http, cluster.NodePorts[seq % cluster.NodePorts.Count], seq % groups.Count, groups.Size, body, CancellationToken.None);
                latencies?.Add(Stopwatch.GetTimestamp() - t0);
                if (!ok)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        return errors;
    }

    /// <summary>Sends <paramref name="count"/> messages at <paramref name="perSecond"/>, each on its own schedule slot, not waiting for earlier ones.</summary>
    private async Task<long> SendOpenLoopAsync(Cluster cluster, HttpClient http, Groups groups, int count, double perSecond, ConcurrentBag<long> latencies, ConcurrentBag<(long, long, int)>? posts)
    {
        long errors = 0;
        var inFlight = new List<Task>(count);
        var start = Stopwatch.GetTimestamp();
        for (var seq = 0; seq < count; seq++)
        {
            var due = start + (long)(seq / perSecond * Stopwatch.Frequency);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > Stopwatch.Frequency / 1000)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency));
            }

            var s = seq;
            inFlight.Add(Task.Run(async () =>
            {
                var t0 = Stopwatch.GetTimestamp();
                var body = MessageBody(s, t0);
                var ok = await PostAsync(http, cluster.NodePorts[s % cluster.NodePorts.Count], s % groups.Count, groups.Size, body, CancellationToken.None);
                latencies.Add(Stopwatch.GetTimestamp() - t0);
                posts?.Add((t0, Stopwatch.GetTimestamp() - t0, s));
                if (!ok)
                {
                    Interlocked.Increment(ref errors);
                }
            }));
        }

        await Task.WhenAll(inFlight);
        return errors;
    }

    private async Task<bool> PostAsync(HttpClient http, int port, int group, int size, byte[] body, CancellationToken cancellationToken)
    {
        var route = GroupPublish ? "send-group" : BackgroundDispatch ? "send-bg" : "send";
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        try
        {
            using var response = await http.PostAsync(new Uri($"http://127.0.0.1:{port}/{route}?g={group}&s={size}"), content, cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>Waits until every delivery of [from, to) arrived, or nothing arrived for 3 seconds.</summary>
    private static async Task WaitDeliveredAsync(Recorder recorder, int from, int to)
    {
        var expected = (long)(to - from) * recorder.ExpectedPerMessage;
        var last = -1L;
        var quiet = Stopwatch.StartNew();
        while (true)
        {
            var delivered = recorder.DeliveredBetween(from, to);
            if (delivered >= expected)
            {
                return;
            }

            if (delivered != last)
            {
                last = delivered;
                quiet.Restart();
            }
            else if (quiet.Elapsed > TimeSpan.FromSeconds(3))
            {
                return;
            }

            await Task.Delay(20);
        }
    }

    private void Log(string message)
    {
        if (!Quiet)
        {
            Console.Error.WriteLine(message);
        }
    }
}
