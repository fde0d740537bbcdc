using System.ComponentModel;
using System.Diagnostics;
using System.Text.RegularExpressions;
using ChatScale.Testing;

namespace ChatScale.Packaging.Tests;

/// <summary>
/// README's JavaScript blocks parse as ES modules (what a page would import them as): <c>node --check</c> on each,
/// so a typo in the browser client's example fails CI like a C# one does.
/// </summary>
public sealed partial class ReadmeScriptTests
{
    [Fact]
    public async Task Every_JavaScript_block_of_the_README_parses_as_an_ES_module()
    {
        var readme = File.ReadAllText(Path.Combine(Dotnet.FindRepositoryRoot(), "README.md"));
        var blocks = JsBlock().Matches(readme).Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(blocks);
        var directory = Directory.CreateTempSubdirectory("chatscale-readme-js-");
        try
        {
            for (var i = 0; i < blocks.Count; i++)
            {
                var file = Path.Combine(directory.FullName, $"block{i + 1}.mjs");
                await File.WriteAllTextAsync(file, blocks[i]);
                var (exitCode, errors) = await NodeCheckAsync(file);
                Assert.True(exitCode == 0, $"README's JavaScript block {i + 1} does not parse:\n{errors}\n{blocks[i]}");
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static async Task<(int ExitCode, string Errors)> NodeCheckAsync(string file)
    {
        var start = new ProcessStartInfo("node") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("--check");
        start.ArgumentList.Add(file);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (Win32Exception)
        {
            throw new MissingTestDependencyException("No Node.js for the README's JavaScript check: `node` is not on PATH. Install it (apt-get install -y nodejs).");
        }

        using (process)
        {
            var errors = process.StandardError.ReadToEndAsync();
            await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await errors);
        }
    }

    [GeneratedRegex(@"^```js\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex JsBlock();
}
