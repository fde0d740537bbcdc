using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;
using Testcontainers.Redis;

namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>
/// One Redis shared by the two-node tests: the server named by <c>CHATSCALE_TEST_REDIS</c> (a StackExchange.Redis
/// connection string) when set, else a <c>redis-server</c> binary started on a free loopback port for the test run,
/// else a Testcontainers Redis where Docker is available. Tests isolate themselves with a unique key prefix.
/// </summary>
public sealed class RedisServerFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "CHATSCALE_TEST_REDIS";

    private Process? _process;
    private RedisContainer? _container;

    public string ConnectionString { get; private set; } = string.Empty;

    public static string UniquePrefix() => "aspnet-" + Guid.NewGuid().ToString("N");

    public async Task InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            ConnectionString = external;
            return;
        }

        var port = FreePort();
        var start = new ProcessStartInfo("redis-server", ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No redis-server on PATH: fall back to a container.
            try
            {
                _container = new RedisBuilder("redis:7.0").Build();
                await _container.StartAsync();
                ConnectionString = _container.GetConnectionString();
                return;
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException($"No Redis for the tests: set {EnvironmentVariable}, install redis-server, or run a Docker engine.", ex);
            }
        }

        _process.OutputDataReceived += static (_, _) => { };
        _process.ErrorDataReceived += static (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        ConnectionString = $"127.0.0.1:{port}";

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                var options = ConfigurationOptions.Parse(ConnectionString);
                options.ConnectTimeout = 1000;
                await using var probe = await ConnectionMultiplexer.ConnectAsync(options);
                await probe.GetDatabase().PingAsync();
                return;
            }
            catch (RedisConnectionException) when (DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(50);
            }
        }
    }

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    public async Task<ConnectionMultiplexer> ConnectAsync()
    {
        var options = ConfigurationOptions.Parse(ConnectionString);
        options.AbortOnConnectFail = false;
        return await ConnectionMultiplexer.ConnectAsync(options);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Tests that share one Redis server.</summary>
[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisServerFixture>
{
    public const string Name = "Redis";
}
