using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit.Abstractions;

namespace ChatScale.Packaging.Tests;

/// <summary>Runs the dotnet CLI the way a user does, and the apps it builds.</summary>
internal static class Dotnet
{
    public static async Task RunAsync(ITestOutputHelper output, string workingDirectory, params string[] args)
    {
        using var process = Start(workingDirectory, new Dictionary<string, string>(), args);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        var text = await stdout + await stderr;
        output.WriteLine($"$ dotnet {string.Join(' ', args)}  (exit {process.ExitCode})");
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed with exit code {process.ExitCode}:\n{text}");
    }

    /// <summary>Starts a built app with <c>dotnet run --no-build</c> on a free loopback port and waits until it listens.</summary>
    public static async Task<RunningApp> RunAppAsync(string project, IReadOnlyDictionary<string, string>? environment = null)
    {
        var port = FreePort();
        var process = Start(project, environment ?? new Dictionary<string, string>(), "run", "-c", "Release", "--no-build", "--urls", $"http://127.0.0.1:{port}");
        var app = new RunningApp(process, port);
        await app.WaitUntilListeningAsync();
        return app;
    }

    public static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ChatScale.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("ChatScale.sln not found above " + AppContext.BaseDirectory);
    }

    private static Process Start(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return Process.Start(info) ?? throw new InvalidOperationException("could not start dotnet");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>An app started by <see cref="RunAppAsync"/>; disposing kills it.</summary>
    public sealed class RunningApp : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();

        public RunningApp(Process process, int port)
        {
            _process = process;
            Port = port;
            process.OutputDataReceived += (_, e) => Append(e.Data);
            process.ErrorDataReceived += (_, e) => Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public int Port { get; }

        public Uri HttpAddress => new($"http://127.0.0.1:{Port}");

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public async Task WaitUntilListeningAsync()
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline)
            {
                Assert.False(_process.HasExited, $"the app exited early with code {(_process.HasExited ? _process.ExitCode : 0)}:\n{Output}");
                try
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync(IPAddress.Loopback, Port);
                    return;
                }
                catch (SocketException)
                {
                    await Task.Delay(100);
                }
            }

            throw new TimeoutException($"the app did not listen on port {Port} within 60 s:\n{Output}");
        }

        public async ValueTask DisposeAsync()
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            _process.Dispose();
        }

        private void Append(string? line)
        {
            if (line is not null)
            {
                lock (_output)
                {
                    _output.AppendLine(line);
                }
            }
        }
    }
}
