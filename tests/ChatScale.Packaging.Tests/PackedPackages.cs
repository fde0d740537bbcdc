using Xunit.Abstractions;
using Xunit.Sdk;

namespace ChatScale.Packaging.Tests;

/// <summary>
/// The three packages packed once into a local folder feed, with a version no earlier run used (so the global
/// package cache can never serve stale bits), shared by the tests that consume them.
/// </summary>
public sealed class PackedPackages(IMessageSink diagnostics) : IAsyncLifetime
{
    public static readonly string[] Names = ["ChatScale.Core", "ChatScale.Redis", "ChatScale.AspNetCore"];

    private DirectoryInfo _work = null!;

    public string Repository { get; } = Dotnet.FindRepositoryRoot();

    public string Version { get; } = $"0.1.0-consumer.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";

    public string Feed { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _work = Directory.CreateTempSubdirectory("chatscale-consumer-");
        Feed = Directory.CreateDirectory(Path.Combine(_work.FullName, "feed")).FullName;
        var log = new SinkOutput(diagnostics);
        foreach (var package in Names)
        {
            await Dotnet.RunAsync(log, Repository, "pack", Path.Combine(Repository, "src", package, package + ".csproj"), "-c", "Release", "-o", Feed, $"-p:Version={Version}");
        }
    }

    /// <summary>A new empty folder under this run's temporary folder.</summary>
    public string NewDirectory(string name) => Directory.CreateDirectory(Path.Combine(_work.FullName, name)).FullName;

    /// <summary>What a consumer's nuget.config says: ChatScale.* from the local feed, everything else from nuget.org.</summary>
    public void WriteNuGetConfig(string project) => File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <clear />
            <add key="local" value="{Feed}" />
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
          </packageSources>
          <packageSourceMapping>
            <packageSource key="local"><package pattern="ChatScale.*" /></packageSource>
            <packageSource key="nuget.org"><package pattern="*" /></packageSource>
          </packageSourceMapping>
        </configuration>
        """);

    public Task DisposeAsync()
    {
        try
        {
            _work.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is not a test failure.
        }

        return Task.CompletedTask;
    }

    private sealed class SinkOutput(IMessageSink sink) : ITestOutputHelper
    {
        public void WriteLine(string message) => sink.OnMessage(new DiagnosticMessage(message));

        public void WriteLine(string format, params object[] args) => sink.OnMessage(new DiagnosticMessage(format, args));
    }
}
