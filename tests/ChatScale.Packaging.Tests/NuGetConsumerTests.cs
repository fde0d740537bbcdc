using System.IO.Compression;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace ChatScale.Packaging.Tests;

/// <summary>
/// What a team outside this repository does: pack the three packages into a local folder feed, create an app with
/// `dotnet new web`, reference ChatScale.AspNetCore from that feed, call AddChatScale() and MapChatScale("/ws"),
/// build, run, and connect a real WebSocket client.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class NuGetConsumerTests(PackedPackages packages, ITestOutputHelper output)
{
    /// <summary>The repository's root folder (the one holding ChatScale.sln).</summary>
    internal static string FindRepositoryRoot() => Dotnet.FindRepositoryRoot();

    [Fact]
    public async Task Every_link_in_the_packed_README_is_absolute_so_it_works_on_nuget_org()
    {
        foreach (var package in PackedPackages.Names)
        {
            using var nupkg = ZipFile.OpenRead(Path.Combine(packages.Feed, $"{package}.{packages.Version}.nupkg"));
            var entry = nupkg.GetEntry("README.md");
            Assert.True(entry is not null, $"{package} has no README.md");
            using var reader = new StreamReader(entry.Open());
            var readme = await reader.ReadToEndAsync();
            var relative = MarkdownLink().Matches(readme).Select(m => m.Groups[1].Value)
                .Where(target => !target.StartsWith("https://", StringComparison.Ordinal) && !target.StartsWith('#'))
                .ToList();
            Assert.True(relative.Count == 0, $"{package}'s README links relatively (broken on nuget.org): {string.Join(", ", relative)}");
        }
    }

    [Fact]
    public async Task Packed_packages_restore_build_and_serve_a_websocket_in_a_fresh_web_app()
    {
        foreach (var package in PackedPackages.Names)
        {
            Assert.True(File.Exists(Path.Combine(packages.Feed, $"{package}.{packages.Version}.nupkg")), $"{package} was not packed");
            Assert.True(File.Exists(Path.Combine(packages.Feed, $"{package}.{packages.Version}.snupkg")), $"{package} has no symbols package");
        }

        var work = packages.NewDirectory("consumer");
        var app = Path.Combine(work, "ConsumerApp");
        await Dotnet.RunAsync(output, work, "new", "web", "-o", app, "-n", "ConsumerApp", "--no-restore");
        packages.WriteNuGetConfig(app);
        await Dotnet.RunAsync(output, app, "add", "package", "ChatScale.AspNetCore", "--version", packages.Version);
        File.Copy(Path.Combine(AppContext.BaseDirectory, "ConsumerApp", "Program.cs.txt"), Path.Combine(app, "Program.cs"), overwrite: true);
        await Dotnet.RunAsync(output, app, "build", "-c", "Release");

        await using var server = await Dotnet.RunAppAsync(app);
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("X-User", "alice");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{server.Port}/ws"), timeout.Token);

        using var http = new HttpClient { BaseAddress = server.HttpAddress };
        using var response = await http.PostAsync(new Uri("/send/alice", UriKind.Relative), null, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, timeout.Token);
        Assert.Equal(WebSocketMessageType.Text, received.MessageType);
        Assert.Equal("{\"text\":\"hello from the package\"}", Encoding.UTF8.GetString(buffer, 0, received.Count));

        // Anonymous clients are turned away by the package's endpoint.
        using var anonymous = new ClientWebSocket();
        var refused = await Assert.ThrowsAsync<WebSocketException>(() => anonymous.ConnectAsync(new Uri($"ws://127.0.0.1:{server.Port}/ws"), timeout.Token));
        output.WriteLine($"anonymous connect refused: {refused.Message}");
    }

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex MarkdownLink();
}
