using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>A throwaway <c>redis-server</c> on a free loopback port for the Redis benchmarks (no persistence).</summary>
internal sealed class RedisProcess : IDisposable
{
    private readonly Process _process;

    private RedisProcess(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    public static RedisProcess Start()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var info = new ProcessStartInfo("redis-server") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var a in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no" })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("redis-server is required for the Redis benchmarks (apt-get install redis-server).");
        _ = process.StandardOutput.ReadToEndAsync();
        for (var i = 0; ; i++)
        {
            try
            {
                using var probe = ConnectionMultiplexer.Connect($"127.0.0.1:{port}");
                return new RedisProcess(process, port);
            }
            catch (RedisConnectionException) when (i < 50)
            {
                Thread.Sleep(100);
            }
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.WaitForExit();
        _process.Dispose();
    }
}
