using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using ChatScale.Testing;
using StackExchange.Redis;

namespace ChatScale.LoadTest;

/// <summary>A redis-server and the nodes of one system, all child processes of the driver on 127.0.0.1.</summary>
internal sealed class Cluster : IAsyncDisposable
{
    private readonly List<Process> _nodes = [];

    private Cluster(Process? redis, int redisPort, ConnectionMultiplexer admin, RedisClusterFixture? redisCluster = null)
    {
        Redis = redis;
        RedisPort = redisPort;
        Admin = admin;
        _redisCluster = redisCluster;
    }

    // --redis-cluster: a local 3-master Redis Cluster instead of one redis-server (ChatScale uses sharded pub/sub).
    private readonly RedisClusterFixture? _redisCluster;

    public Process? Redis { get; }

    public int RedisPort { get; }

    public string RedisConnectionString => _redisCluster?.ConnectionString ?? $"127.0.0.1:{RedisPort}";

    public ConnectionMultiplexer Admin { get; }

    public IServer RedisServer => Admin.GetServer(Admin.GetEndPoints()[0]);

    private IServer[] Masters => [.. Admin.GetServers().Where(s => !s.IsReplica)];

    /// <summary>Per master of a cluster run: each CommandStatsAsync call's (endpoint, total calls, CPU seconds).</summary>
    public List<(string EndPoint, long Calls, double CpuSeconds)[]> MasterSamples { get; } = [];

    public static async Task<Cluster> StartRedisClusterAsync()
    {
        var fixture = new RedisClusterFixture();
        await fixture.InitializeAsync();
        var admin = await fixture.ConnectAsync(allowAdmin: true);
        return new Cluster(null, 0, admin, fixture);
    }

    public IReadOnlyList<int> NodePids => _nodes.Select(n => n.Id).ToList();

    public List<int> NodePorts { get; } = [];

    public string System { get; private set; } = string.Empty;

    public static async Task<Cluster> StartRedisAsync()
    {
        var port = FreePort();
        var dir = Directory.CreateTempSubdirectory("chatscale-load-redis-").FullName;
        var info = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true, WorkingDirectory = dir };
        foreach (var a in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no", "--maxclients", "60000" })
        {
            info.ArgumentList.Add(a);
        }

        var redis = Process.Start(info) ?? throw new InvalidOperationException("could not start redis-server");
        _ = redis.StandardOutput.ReadToEndAsync();
        for (var i = 0; ; i++)
        {
            try
            {
                var admin = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port},allowAdmin=true");
                return new Cluster(redis, port, admin);
            }
            catch (RedisConnectionException) when (i < 50)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Stops the nodes of the previous system, empties Redis, and starts <paramref name="count"/> nodes of <paramref name="system"/>.</summary>
    public async Task StartNodesAsync(string system, int count, int users, string extraArgs = "")
    {
        await StopNodesAsync();
        foreach (var server in Masters)
        {
            await server.FlushAllDatabasesAsync();
            await server.ConfigResetStatisticsAsync();
        }

        if (_redisCluster is not null && system == "chatscale")
        {
            extraArgs += " --sharded";
        }

        System = system;
        var self = Environment.ProcessPath!;
        var dll = typeof(Cluster).Assembly.Location;
        var starts = new List<Task>();
        for (var i = 0; i < count; i++)
        {
            var port = FreePort();
            var info = new ProcessStartInfo(self) { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true };
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                info.ArgumentList.Add(dll);
            }

            foreach (var a in $"node --system {system} --port {port} --redis {RedisConnectionString} --users {users} --node-id {system}-{i} {extraArgs}".Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                info.ArgumentList.Add(a);
            }

            var process = Process.Start(info) ?? throw new InvalidOperationException("could not start a node");
            _nodes.Add(process);
            NodePorts.Add(port);
            starts.Add(WaitReadyAsync(process));
        }

        await Task.WhenAll(starts);
    }

    public async Task StopNodesAsync()
    {
        foreach (var node in _nodes)
        {
            try
            {
                node.StandardInput.Close();
            }
            catch (IOException)
            {
            }
        }

        foreach (var node in _nodes)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await node.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                node.Kill(entireProcessTree: true);
            }

            node.Dispose();
        }

        _nodes.Clear();
        NodePorts.Clear();
    }

    public double NodesCpuSeconds() => _nodes.Sum(n => ProcStats.CpuSeconds(n.Id));

    public long NodesPeakRss() => _nodes.Sum(n => ProcStats.StatusBytes(n.Id, "VmHWM"));

    public long NodesRss() => _nodes.Sum(n => ProcStats.StatusBytes(n.Id, "VmRSS"));

    public double RedisCpuSeconds() => Redis is not null ? ProcStats.CpuSeconds(Redis.Id) : Masters.Sum(m => ProcStats.CpuSeconds(Pid(m)));

    public async Task<Dictionary<string, long>> CommandStatsAsync()
    {
        if (_redisCluster is null)
        {
            return await CommandStats.SnapshotAsync(RedisServer);
        }

        var masters = Masters;
        var sample = new (string, long, double)[masters.Length];
        for (var i = 0; i < masters.Length; i++)
        {
            var stats = await CommandStats.SnapshotAsync(masters[i]);
            sample[i] = (masters[i].EndPoint.ToString()!, stats.Values.Sum(), ProcStats.CpuSeconds(Pid(masters[i])));
        }

        MasterSamples.Add(sample);
        return await CommandStats.SnapshotAsync(masters);
    }

    private static int Pid(IServer server)
        => int.Parse(server.Info("server").SelectMany(g => g).First(p => p.Key == "process_id").Value, CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await StopNodesAsync();
        await Admin.DisposeAsync();
        if (_redisCluster is not null)
        {
            await _redisCluster.DisposeAsync();
            return;
        }

        if (!Redis!.HasExited)
        {
            Redis.Kill();
        }

        await Redis.WaitForExitAsync();
        Redis.Dispose();
    }

    private static async Task WaitReadyAsync(Process process)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token)
                ?? throw new InvalidOperationException($"node {process.Id} exited before it was ready (exit code {(process.HasExited ? process.ExitCode : -1)})");
            if (line.StartsWith("READY", StringComparison.Ordinal))
            {
                // Keep draining its stdout so the node never blocks on a full pipe; show its warnings.
                _ = Task.Run(async () =>
                {
                    while (await process.StandardOutput.ReadLineAsync() is { } more)
                    {
                        Console.Error.WriteLine($"[node {process.Id}] {more}");
                    }
                });
                return;
            }

            Console.Error.WriteLine($"[node {process.Id}] {line}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
