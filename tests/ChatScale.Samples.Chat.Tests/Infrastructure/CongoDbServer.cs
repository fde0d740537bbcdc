using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>
/// CongoDB, the in-memory MongoDB-wire server of the npm package <c>@push.rocks/smartmongo</c> 2.2.0, run with the
/// machine's Node.js on a free loopback port (see <c>CongoDb/install.sh</c> and <c>shared/MONGODB.md</c>). Needs
/// <c>node</c> and <c>npm</c>; fails loudly, naming what to install, when they are missing.
/// </summary>
internal sealed class CongoDbServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);
    private static readonly SemaphoreSlim InstallGate = new(1, 1);
    private readonly Process _process;

    private CongoDbServer(Process process, int port)
    {
        _process = process;
        Port = port;
    }

    public int Port { get; }

    public string ConnectionString => $"mongodb://127.0.0.1:{Port.ToString(CultureInfo.InvariantCulture)}/?directConnection=true&serverMonitoringMode=Poll";

    public static async Task<CongoDbServer> StartAsync()
    {
        var directory = typeof(CongoDbServer).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "CongoDbDirectory").Value!;
        foreach (var tool in (string[])["node", "npm"])
        {
            if (RedisServer.FindOnPath(tool) is null)
            {
                throw new MissingTestDependencyException(
                    $"The MongoDB tests need CongoDB, which runs on Node.js: tried {MongoFixture.EnvironmentVariable} (unset) and {tool} (not on PATH). " +
                    "Install Node.js (apt-get install -y nodejs npm), or set CHATSCALE_TEST_MONGO to a real MongoDB.");
            }
        }

        await InstallAsync(directory);

        var port = RedisServer.FreePort();
        var info = new ProcessStartInfo("node")
        {
            WorkingDirectory = directory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add("server.js");
        info.ArgumentList.Add(port.ToString(CultureInfo.InvariantCulture));
        info.ArgumentList.Add("--exit-on-stdin-close");
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException("Could not start node for CongoDB.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException(
                "CongoDB needs Node.js on PATH (apt-get install nodejs npm, or run .ci/install-deps.sh); or set CHATSCALE_TEST_MONGO to a real MongoDB.", ex);
        }

        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(StartTimeout);
        try
        {
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(timeout.Token)
                    ?? throw new InvalidOperationException($"CongoDB exited while starting: {await stderr}");
                if (line.StartsWith("listening", StringComparison.Ordinal))
                {
                    break;
                }
            }
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }

        return new CongoDbServer(process, port);
    }

    private static async Task InstallAsync(string directory)
    {
        await InstallGate.WaitAsync();
        try
        {
            var info = new ProcessStartInfo("bash")
            {
                WorkingDirectory = directory,
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            info.ArgumentList.Add(Path.Combine(directory, "install.sh"));
            using var process = Process.Start(info) ?? throw new InvalidOperationException("Could not run bash.");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            await process.WaitForExitAsync(timeout.Token);
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException(
                    $"Installing CongoDB failed ({process.ExitCode}). It needs Node.js and npm with access to the npm registry " +
                    $"(apt-get install nodejs npm, or run .ci/install-deps.sh); or set CHATSCALE_TEST_MONGO to a real MongoDB.\n{await stdout}\n{await stderr}");
            }
        }
        finally
        {
            InstallGate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Closing stdin asks server.js to stop; kill it if it does not.
        try
        {
            _process.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.Dispose();
    }
}
