using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace ChatScale.Testing;

/// <summary>
/// A local three-master Redis Cluster: three <c>redis-server --cluster-enabled yes</c> processes on free loopback
/// ports, joined with <c>redis-cli --cluster create ... --cluster-yes</c>. Needs the redis-server and redis-cli
/// binaries (the Debian package <c>redis-server</c> ships both).
/// </summary>
public sealed class RedisClusterFixture : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly List<RedisServer.ProcessRedisServer> _nodes = [];

    /// <summary>Connection string naming all three nodes.</summary>
    public string ConnectionString { get; private set; } = string.Empty;

    public async Task InitializeAsync()
    {
        var server = RedisServer.FindOnPath("redis-server")
            ?? throw new MissingTestDependencyException("The cluster tests need redis-server on PATH (not found; apt-get install -y redis-server).");
        var cli = RedisServer.FindOnPath("redis-cli")
            ?? throw new MissingTestDependencyException("The cluster tests need redis-cli on PATH (not found; apt-get install -y redis-server).");

        for (var i = 0; i < 3; i++)
        {
            var port = RedisServer.FreePort(withClusterBus: true);
            var node = new RedisServer.ProcessRedisServer(server, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000");
            _nodes.Add(node);
            await node.StartAsync().ConfigureAwait(false);
        }

        var create = new ProcessStartInfo(cli) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        create.ArgumentList.Add("--cluster");
        create.ArgumentList.Add("create");
        foreach (var node in _nodes)
        {
            create.ArgumentList.Add($"127.0.0.1:{node.Port.ToString(CultureInfo.InvariantCulture)}");
        }

        create.ArgumentList.Add("--cluster-yes");
        using (var process = Process.Start(create) ?? throw new InvalidOperationException("Could not start redis-cli."))
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(Timeout);
            await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"redis-cli --cluster create failed ({process.ExitCode}): {await stdout.ConfigureAwait(false)} {await stderr.ConfigureAwait(false)}");
            }
        }

        ConnectionString = string.Join(',', _nodes.Select(n => n.ConnectionString));
        await WaitForClusterOkAsync().ConfigureAwait(false);
    }

    public async Task DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A fresh multiplexer to the cluster; the test disposes it.</summary>
    public Task<ConnectionMultiplexer> ConnectAsync(bool allowAdmin = false)
    {
        var options = ConfigurationOptions.Parse(ConnectionString);
        options.AbortOnConnectFail = false;
        options.AllowAdmin = allowAdmin;
        return ConnectionMultiplexer.ConnectAsync(options);
    }

    // Slots are assigned at once, but every node must agree (gossip) before all of them accept commands.
    private async Task WaitForClusterOkAsync()
    {
        var deadline = Stopwatch.StartNew();
        var options = ConfigurationOptions.Parse(ConnectionString);
        options.AbortOnConnectFail = false;
        options.AllowAdmin = true;
        await using var mux = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
        while (true)
        {
            var ok = true;
            foreach (var node in _nodes)
            {
                try
                {
                    var server = mux.GetServer("127.0.0.1", node.Port);
                    var info = (string?)await server.ExecuteAsync("CLUSTER", "INFO").ConfigureAwait(false) ?? string.Empty;
                    ok &= info.Contains("cluster_state:ok", StringComparison.Ordinal);
                }
                catch (RedisException)
                {
                    ok = false;
                }
            }

            if (ok)
            {
                return;
            }

            if (deadline.Elapsed > Timeout)
            {
                throw new TimeoutException("The local Redis Cluster did not reach cluster_state:ok.");
            }

            await Task.Delay(100).ConfigureAwait(false);
        }
    }
}
