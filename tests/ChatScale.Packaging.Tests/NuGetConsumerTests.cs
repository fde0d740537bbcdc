using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Xunit.Abstractions;

namespace ChatScale.Packaging.Tests;

/// <summary>
/// What a team outside this repository does: pack the three packages into a local folder feed, create an app with
/// `dotnet new web`, reference ChatScale.AspNetCore from that feed, call AddChatScale() and MapChatScale("/ws"),
/// build, run, and connect a real WebSocket client.
/// </summary>
public sealed class NuGetConsumerTests(ITestOutputHelper output)
{
    private static readonly string[] Packages = ["ChatScale.Core", "ChatScale.Redis", "ChatScale.AspNetCore"];

    [Fact]
    public async Task Packed_packages_restore_build_and_serve_a_websocket_in_a_fresh_web_app()
    {
        var repo = FindRepositoryRoot();
        var work = Directory.CreateTempSubdirectory("chatscale-consumer-");
        try
        {
            // A version no earlier run used, so the global package cache can never serve stale bits.
            var version = $"0.1.0-consumer.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
            var feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            foreach (var package in Packages)
            {
                await DotnetAsync(repo, "pack", Path.Combine(repo, "src", package, package + ".csproj"), "-c", "Release", "-o", feed, $"-p:Version={version}");
            }

            foreach (var package in Packages)
            {
                Assert.True(File.Exists(Path.Combine(feed, $"{package}.{version}.nupkg")), $"{package} was not packed");
                Assert.True(File.Exists(Path.Combine(feed, $"{package}.{version}.snupkg")), $"{package} has no symbols package");
            }

            var app = Path.Combine(work.FullName, "ConsumerApp");
            await DotnetAsync(work.FullName, "new", "web", "-o", app, "-n", "ConsumerApp", "--no-restore");
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                  <packageSourceMapping>
                    <packageSource key="local"><package pattern="ChatScale.*" /></packageSource>
                    <packageSource key="nuget.org"><package pattern="*" /></packageSource>
                  </packageSourceMapping>
                </configuration>
                """);
            await DotnetAsync(app, "add", "package", "ChatScale.AspNetCore", "--version", version);
            File.Copy(Path.Combine(AppContext.BaseDirectory, "ConsumerApp", "Program.cs.txt"), Path.Combine(app, "Program.cs"), overwrite: true);
            await DotnetAsync(app, "build", "-c", "Release");

            var port = FreePort();
            using var server = Start(app, "run", "-c", "Release", "--no-build", "--urls", $"http://127.0.0.1:{port}");
            var serverOutput = new StringBuilder();
            server.OutputDataReceived += (_, e) => Append(serverOutput, e.Data);
            server.ErrorDataReceived += (_, e) => Append(serverOutput, e.Data);
            server.BeginOutputReadLine();
            server.BeginErrorReadLine();
            try
            {
                await WaitForPortAsync(port, server, serverOutput);
                using var socket = new ClientWebSocket();
                socket.Options.SetRequestHeader("X-User", "alice");
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), timeout.Token);

                using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
                using var response = await http.PostAsync(new Uri("/send/alice", UriKind.Relative), null, timeout.Token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);

                var buffer = new byte[1024];
                var received = await socket.ReceiveAsync(buffer, timeout.Token);
                Assert.Equal(WebSocketMessageType.Text, received.MessageType);
                Assert.Equal("{\"text\":\"hello from the package\"}", Encoding.UTF8.GetString(buffer, 0, received.Count));

                // Anonymous clients are turned away by the package's endpoint.
                using var anonymous = new ClientWebSocket();
                var refused = await Assert.ThrowsAsync<WebSocketException>(() => anonymous.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), timeout.Token));
                output.WriteLine($"anonymous connect refused: {refused.Message}");
            }
            finally
            {
                server.Kill(entireProcessTree: true);
                await server.WaitForExitAsync();
            }
        }
        finally
        {
            try
            {
                work.Delete(recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp folder is not a test failure.
            }
        }
    }

    private async Task DotnetAsync(string workingDirectory, params string[] args)
    {
        using var process = Start(workingDirectory, args);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        var text = await stdout + await stderr;
        output.WriteLine($"$ dotnet {string.Join(' ', args)}  (exit {process.ExitCode})");
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed with exit code {process.ExitCode}:\n{text}");
    }

    private static Process Start(string workingDirectory, params string[] args)
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
        return Process.Start(info) ?? throw new InvalidOperationException("could not start dotnet");
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is not null)
        {
            lock (output)
            {
                output.AppendLine(line);
            }
        }
    }

    private static async Task WaitForPortAsync(int port, Process server, StringBuilder serverOutput)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (server.HasExited)
            {
                lock (serverOutput)
                {
                    Assert.Fail($"the consumer app exited early with code {server.ExitCode}:\n{serverOutput}");
                }
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new TimeoutException($"the consumer app did not listen on port {port} within 60 s");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    internal static string FindRepositoryRoot()
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
}
