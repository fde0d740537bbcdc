using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using StackExchange.Redis;

namespace ChatScale.LoadTest;

/// <summary>
/// <c>--timeline DIR</c>: around the latency phase, writes what is needed to explain its tail, all stamped with
/// <see cref="Stopwatch"/> milliseconds from the phase's start: every delivery (receive time, latency, message, client),
/// every POST (send time, duration, message), each node's and the driver's <see cref="Timeline"/>, Redis's slow log
/// (commands over 0.5 ms) and latency events, and <c>INFO commandstats</c> and each node's GC counts before and after.
/// </summary>
internal sealed class TimelineDump
{
    private readonly string _dir;
    private readonly string _name;
    private readonly Cluster _cluster;
    private readonly HttpClient _http;
    private readonly Timeline _driver = Timeline.Start();
    private readonly StringBuilder _summary = new();
    private readonly StringBuilder _cpu = new("at_ms user nice system idle iowait irq softirq steal ours_jiffies\n");
    private volatile bool _sampling;
    private Thread? _sampler;
    private long _start;

    public TimelineDump(string dir, string system, int run, Cluster cluster, HttpClient http)
    {
        _dir = dir;
        _name = $"{system}-run{run}-{DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture)}";
        _cluster = cluster;
        _http = http;
        Directory.CreateDirectory(dir);
    }

    /// <summary>Each POST of the phase: when it was sent, how long it took, its message.</summary>
    public ConcurrentBag<(long Sent, long Duration, int Seq)> Posts { get; } = [];

    public async Task BeforeAsync()
    {
        var redis = _cluster.RedisServer;
        await redis.ExecuteAsync("CONFIG", "SET", "slowlog-log-slower-than", "500");
        await redis.ExecuteAsync("CONFIG", "SET", "slowlog-max-len", "10000");
        await redis.ExecuteAsync("CONFIG", "SET", "latency-monitor-threshold", "1");
        await redis.ExecuteAsync("SLOWLOG", "RESET");
        await redis.ExecuteAsync("LATENCY", "RESET");
        _summary.Append("commandstats before:\n").Append(await redis.InfoRawAsync("commandstats")).Append('\n');
        await GcStatsAsync("before");
        _start = Stopwatch.GetTimestamp();
        _sampling = true;
        _sampler = new Thread(SampleCpu) { IsBackground = true, Name = "timeline-cpu" };
        _sampler.Start();
        _summary.Append(CultureInfo.InvariantCulture, $"phase start {_start} (Stopwatch ticks, {Stopwatch.Frequency}/s), unix ms {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}\n");
    }

    public async Task AfterAsync(Recorder recorder, LoadClient[] clients, TimeSpan keepAlive)
    {
        _sampling = false;
        _sampler?.Join();
        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-cpu.txt"), _cpu.ToString());
        var redis = _cluster.RedisServer;
        _summary.Append(CultureInfo.InvariantCulture, $"phase end unix ms {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}\n");
        _summary.Append("commandstats after:\n").Append(await redis.InfoRawAsync("commandstats")).Append('\n');
        await GcStatsAsync("after");
        var latency = await redis.ExecuteAsync("LATENCY", "LATEST");
        _summary.Append("LATENCY LATEST:\n");
        foreach (var row in (RedisResult[])latency!)
        {
            _summary.Append(string.Join(' ', ((RedisResult[])row!).Select(v => v.ToString()))).Append('\n');
        }

        var slow = new StringBuilder("unix_s duration_us command\n");
        foreach (var entry in (RedisResult[])(await redis.ExecuteAsync("SLOWLOG", "GET", "10000"))!)
        {
            var e = (RedisResult[])entry!;
            var args = (RedisResult[])e[3]!;
            slow.Append(CultureInfo.InvariantCulture, $"{(long)e[1]} {(long)e[2]} {string.Join(' ', args.Take(6).Select(a => a.ToString()))}\n");
        }

        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-slowlog.txt"), slow.ToString());
        await redis.ExecuteAsync("CONFIG", "SET", "slowlog-log-slower-than", "10000");
        await redis.ExecuteAsync("CONFIG", "SET", "latency-monitor-threshold", "0");

        var deliveries = new StringBuilder("received_ms latency_ms seq client\n");
        foreach (var (received, lat, seq, client) in recorder.TimelineRows())
        {
            deliveries.Append(CultureInfo.InvariantCulture, $"{Recorder.Ms(received - _start):F3} {Recorder.Ms(lat):F3} {seq} {client}\n");
        }

        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-deliveries.txt"), deliveries.ToString());
        var posts = new StringBuilder("sent_ms duration_ms seq\n");
        foreach (var (sent, duration, seq) in Posts.OrderBy(p => p.Sent))
        {
            posts.Append(CultureInfo.InvariantCulture, $"{Recorder.Ms(sent - _start):F3} {Recorder.Ms(duration):F3} {seq}\n");
        }

        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-posts.txt"), posts.ToString());

        // Where a server that pings every keepAlive from the handshake on would ping during the phase: connect + k * interval.
        var pings = new StringBuilder("at_ms client\n");
        var interval = (long)(keepAlive.TotalSeconds * Stopwatch.Frequency);
        var end = Stopwatch.GetTimestamp();
        foreach (var c in clients)
        {
            for (var at = c.ConnectedAt + interval; interval > 0 && at < end; at += interval)
            {
                if (at >= _start - Stopwatch.Frequency)
                {
                    pings.Append(CultureInfo.InvariantCulture, $"{Recorder.Ms(at - _start):F3} {c.Index}\n");
                }
            }
        }

        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-pings.txt"), pings.ToString());

        // Runtime events arrive with a delay: give them a moment before reading.
        await Task.Delay(1500);
        var events = new StringBuilder("at_ms process kind ms detail\n");
        Append(events, "driver", _driver.Since(_start));
        for (var i = 0; i < _cluster.NodePorts.Count; i++)
        {
            var text = await _http.GetStringAsync(new Uri($"http://127.0.0.1:{_cluster.NodePorts[i]}/timeline?from={_start}"));
            Append(events, "node" + i.ToString(CultureInfo.InvariantCulture), text);
        }

        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-events.txt"), events.ToString());
        await File.WriteAllTextAsync(Path.Combine(_dir, _name + "-summary.txt"), _summary.ToString());
        Console.Error.WriteLine($"timeline: {Path.Combine(_dir, _name)}-*.txt");
    }

    private void Append(StringBuilder events, string process, string lines)
    {
        foreach (var line in lines.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 2);
            var at = long.Parse(parts[0], CultureInfo.InvariantCulture);
            events.Append(CultureInfo.InvariantCulture, $"{Recorder.Ms(at - _start):F3} {process} {parts[1]}\n");
        }
    }

    private async Task GcStatsAsync(string label)
    {
        for (var i = 0; i < _cluster.NodePorts.Count; i++)
        {
            var stats = await _http.GetStringAsync(new Uri($"http://127.0.0.1:{_cluster.NodePorts[i]}/gc-stats"));
            _summary.Append(CultureInfo.InvariantCulture, $"node{i} gc {label} (gen0 gen1 gen2 pause_ms): {stats}\n");
        }

        _summary.Append(CultureInfo.InvariantCulture, $"driver gc {label}: {GC.CollectionCount(0)} {GC.CollectionCount(1)} {GC.CollectionCount(2)} {GC.GetTotalPauseDuration().TotalMilliseconds:F1}\n");
    }

    // Every 20 ms: the machine's CPU jiffies by kind (/proc/stat) and those of this run's processes (driver, nodes,
    // redis-server), so a stall can be told apart: the VM not running (steal), other processes, or this run's own work.
    private void SampleCpu()
    {
        var pids = new List<int>(_cluster.NodePids) { Environment.ProcessId };
        if (_cluster.Redis is { } r)
        {
            pids.Add(r.Id);
        }

        while (_sampling)
        {
            var at = Stopwatch.GetTimestamp();
            var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var ours = pids.Sum(ProcStats.CpuSeconds) * 100;
            _cpu.Append(CultureInfo.InvariantCulture, $"{Recorder.Ms(at - _start):F1} {string.Join(' ', cpu.Skip(1).Take(8))} {ours:F0}\n");
            Thread.Sleep(20);
        }
    }
}
