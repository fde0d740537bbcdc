using System.Diagnostics;

namespace ChatScale.Packaging.Tests;

/// <summary>
/// README's test command (<c>./build.sh test</c>) on a machine that has nothing but bash and the .NET SDK: it must stop
/// before any test runs, with one line naming what is missing and the command that installs it, and a non-zero exit.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class BuildScriptTests
{
    [Fact]
    public async Task Test_command_on_a_bare_PATH_names_what_is_missing_in_one_line_and_runs_nothing()
    {
        var bin = Directory.CreateTempSubdirectory("chatscale-bare-path-");
        try
        {
            // A PATH with bash and a stand-in `dotnet` that leaves a mark if anything runs it: redis-server, node,
            // npm, chromium and apt-get are all out of reach.
            File.CreateSymbolicLink(Path.Combine(bin.FullName, "bash"), "/bin/bash");
            var marker = Path.Combine(bin.FullName, "dotnet-was-run");
            var dotnet = Path.Combine(bin.FullName, "dotnet");
            await File.WriteAllTextAsync(dotnet, $"#!/bin/bash\necho \"$@\" > '{marker}'\n");
            File.SetUnixFileMode(dotnet, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

            var info = new ProcessStartInfo("/bin/bash")
            {
                WorkingDirectory = NuGetConsumerTests.FindRepositoryRoot(),
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add("build.sh");
            info.ArgumentList.Add("test");
            info.Environment.Clear();
            info.Environment["PATH"] = bin.FullName;
            info.Environment["HOME"] = bin.FullName;

            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await process.WaitForExitAsync(timeout.Token);

            var lines = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            var line = Assert.Single(lines);
            Assert.StartsWith("build.sh: missing redis-server, node, npm, chromium: install with ", line, StringComparison.Ordinal);
            Assert.Contains("apt-get install -y redis-server nodejs npm chromium", line, StringComparison.Ordinal);
            Assert.Equal(string.Empty, await stdout);
            Assert.Equal(2, process.ExitCode);
            Assert.False(File.Exists(marker), "build.sh ran dotnet although its dependency check failed");
        }
        finally
        {
            bin.Delete(recursive: true);
        }
    }
}
