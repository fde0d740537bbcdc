using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DotNet.Testcontainers.Builders;
using Testcontainers.Redis;

namespace ChatScale.Testing;

/// <summary>
/// One Redis server a test can stop and start again on the same port: a local <c>redis-server</c> process when the
/// binary is on PATH, else a Testcontainers Redis container with a fixed host port.
/// </summary>
public abstract class RedisServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Loopback port the server listens on; stays the same across <see cref="StopAsync"/>/<see cref="StartAsync"/>.</summary>
    public int Port { get; protected init; }

    /// <summary>StackExchange.Redis connection string for this server.</summary>
    public virtual string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>
    /// Starts a new standalone server: <c>redis-server</c> from PATH if present, else a Docker container.
    /// Throws <see cref="MissingTestDependencyException"/> (rather than skipping) when neither is available, so a
    /// missing dependency is visible, in one line.
    /// </summary>
    public static async Task<RedisServer> StartNewAsync(params string[] extraArguments)
    {
        if (FindOnPath("redis-server") is { } binary)
        {
            var server = new ProcessRedisServer(binary, FreePort(), extraArguments);
            await server.StartAsync().ConfigureAwait(false);
            return server;
        }

        if (!await DockerEndpoint.IsAvailableAsync().ConfigureAwait(false))
        {
            throw new MissingTestDependencyException(
                $"No Redis for the tests: tried {RedisFixture.EnvironmentVariable} (unset), redis-server (not on PATH), " +
                $"Docker (no engine at {DockerEndpoint.Describe()}). Install redis-server (apt-get install -y redis-server).");
        }

        var container = new ContainerRedisServer(FreePort());
        try
        {
            await container.StartAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await container.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException(
                $"No Redis for the tests: redis-server is not on PATH and the Docker engine at {DockerEndpoint.Describe()} " +
                $"could not start a Redis container. Install redis-server (apt-get install -y redis-server), set " +
                $"{RedisFixture.EnvironmentVariable}, or run `{MissingTestDependencyException.SetUpCommand}`.", ex);
        }

        return container;
    }

    /// <summary>Starts (or restarts) the server on <see cref="Port"/> and waits until it answers PING.</summary>
    public abstract Task StartAsync();

    /// <summary>Stops the server abruptly (like a crash); its data is gone.</summary>
    public abstract Task StopAsync();

    /// <inheritdoc />
    public abstract ValueTask DisposeAsync();

    /// <summary>A free loopback TCP port (optionally one whose cluster bus port, port + 10000, is free too).</summary>
    public static int FreePort(bool withClusterBus = false)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var port = Probe(0);
            if (!withClusterBus)
            {
                return port;
            }

            if (port + 10000 <= IPEndPoint.MaxPort && IsFree(port + 10000))
            {
                return port;
            }
        }

        throw new InvalidOperationException("Could not find a free port.");

        static bool IsFree(int port)
        {
            try
            {
                Probe(port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }

        static int Probe(int port)
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }

    /// <summary>Waits until the server on <paramref name="port"/> answers PING with PONG.</summary>
    public static async Task WaitForPingAsync(int port, TimeSpan timeout, Func<bool>? stillRunning = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        Exception? last = null;
        while (!cts.IsCancellationRequested)
        {
            if (stillRunning is not null && !stillRunning())
            {
                throw new InvalidOperationException($"Redis on port {port} exited while starting.", last);
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port, cts.Token).ConfigureAwait(false);
                var stream = client.GetStream();
                await stream.WriteAsync("PING\r\n"u8.ToArray(), cts.Token).ConfigureAwait(false);
                var buffer = new byte[64];
                var n = await stream.ReadAsync(buffer, cts.Token).ConfigureAwait(false);
                if (Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException)
            {
                last = ex;
            }
            catch (OperationCanceledException)
            {
                break;
            }

            try
            {
                await Task.Delay(50, cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        throw new TimeoutException($"Redis on port {port} did not answer PING within {timeout}.", last);
    }

    /// <summary>The full path of <paramref name="name"/> on PATH, or null.</summary>
    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>A <c>redis-server</c> child process on a loopback port with no persistence, in a temp directory.</summary>
    public sealed class ProcessRedisServer : RedisServer
    {
        private readonly string _binary;
        private readonly string[] _extraArguments;
        private readonly string _directory;
        private Process? _process;

        public ProcessRedisServer(string binary, int port, params string[] extraArguments)
        {
            _binary = binary;
            Port = port;
            _extraArguments = extraArguments;
            _directory = Directory.CreateTempSubdirectory("chatscale-redis-").FullName;
        }

        /// <summary>The server's working directory (config, logs, cluster state).</summary>
        public string WorkingDirectory => _directory;

        public override async Task StartAsync()
        {
            if (_process is { HasExited: false })
            {
                return;
            }

            var info = new ProcessStartInfo(_binary)
            {
                UseShellExecute = false,
                RedirectStandardOutput = false,
                RedirectStandardError = false,
                WorkingDirectory = _directory,
            };
            foreach (var arg in new[]
            {
                "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--bind", "127.0.0.1",
                "--save", string.Empty,
                "--appendonly", "no",
                "--daemonize", "no",
                "--dir", _directory,
                "--logfile", Path.Combine(_directory, "redis.log"),
            })
            {
                info.ArgumentList.Add(arg);
            }

            foreach (var arg in _extraArguments)
            {
                info.ArgumentList.Add(arg);
            }

            var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {_binary}.");
            _process = process;
            try
            {
                await WaitForPingAsync(Port, StartTimeout, () => !process.HasExited).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var log = Path.Combine(_directory, "redis.log");
                var tail = File.Exists(log) ? File.ReadAllText(log) : "(no log)";
                throw new InvalidOperationException($"redis-server on port {Port} failed to start. Log:\n{tail}", ex);
            }
        }

        public override async Task StopAsync()
        {
            var process = _process;
            _process = null;
            if (process is null)
            {
                return;
            }

            using (process)
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }

                await process.WaitForExitAsync().ConfigureAwait(false);
            }
        }

        public override async ValueTask DisposeAsync()
        {
            await StopAsync().ConfigureAwait(false);
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp directory is harmless.
            }
        }
    }

    /// <summary>A Redis container with a fixed host port, so stopping and starting it keeps the address.</summary>
    public sealed class ContainerRedisServer : RedisServer
    {
        private readonly RedisContainer _container;

        public ContainerRedisServer(int port)
        {
            Port = port;
            _container = new RedisBuilder("redis:7.0")
                .WithPortBinding(port, RedisBuilder.RedisPort)
                .WithWaitStrategy(Wait.ForUnixContainer().UntilCommandIsCompleted("redis-cli", "ping"))
                .Build();
        }

        public override async Task StartAsync()
        {
            await _container.StartAsync().ConfigureAwait(false);
            await WaitForPingAsync(Port, StartTimeout).ConfigureAwait(false);
        }

        public override Task StopAsync() => _container.StopAsync();

        public override ValueTask DisposeAsync() => _container.DisposeAsync();
    }
}
