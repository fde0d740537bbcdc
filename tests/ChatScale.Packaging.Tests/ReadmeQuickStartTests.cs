using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ChatScale.Testing;
using Xunit.Abstractions;

namespace ChatScale.Packaging.Tests;

/// <summary>
/// README's Quick start, followed literally: its <c>dotnet new</c> and <c>dotnet add package</c> lines (ChatScale's own
/// packages from the freshly packed feed), its C# block as Program.cs, built with warnings as errors, then run once on
/// its in-memory defaults and once with Redis: a WebSocket client authenticated by <c>?access_token=</c> receives the
/// message another user posts.
/// </summary>
[Collection(PackagesCollection.Name)]
public sealed partial class ReadmeQuickStartTests(PackedPackages packages, ITestOutputHelper output)
{
    private const string Issuer = "chatscale-readme-test";
    private static readonly byte[] SigningKey = RandomNumberGenerator.GetBytes(32);

    [Fact]
    public async Task The_README_quick_start_compiles_as_written_and_delivers_a_posted_message_to_a_browser_style_websocket()
    {
        var readme = File.ReadAllText(Path.Combine(packages.Repository, "README.md"));
        var section = QuickStartSection(readme);
        var commands = CodeBlocks(section, "bash").Single().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var program = CodeBlocks(section, "csharp").Single();

        var work = packages.NewDirectory("readme");
        var newWeb = commands.Single(c => c.StartsWith("dotnet new web", StringComparison.Ordinal));
        var name = NewWebName().Match(newWeb);
        Assert.True(name.Success, $"README's `{newWeb}` names no project (-n)");
        var app = Path.Combine(work, name.Groups[1].Value);
        await Dotnet.RunAsync(output, work, "new", "web", "-n", name.Groups[1].Value, "-o", app, "--no-restore");
        packages.WriteNuGetConfig(app);

        var added = new List<string>();
        foreach (var command in commands.Where(c => c.StartsWith("dotnet add package ", StringComparison.Ordinal)))
        {
            var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var package = words[3];
            added.Add(package);
            if (package.StartsWith("ChatScale.", StringComparison.Ordinal))
            {
                Assert.Contains(package, PackedPackages.Names);
                await Dotnet.RunAsync(output, app, "add", "package", package, "--version", packages.Version);
            }
            else
            {
                // Anything else is pinned in the README (an unpinned package floats to versions net10.0 cannot use).
                var version = Array.IndexOf(words, "--version");
                Assert.True(version > 0, $"README's `{command}` pins no version");
                await Dotnet.RunAsync(output, app, "add", "package", package, "--version", words[version + 1]);
            }
        }

        Assert.Contains("ChatScale.AspNetCore", added);
        Assert.Contains("Microsoft.AspNetCore.Authentication.JwtBearer", added);
        File.WriteAllText(Path.Combine(app, "Program.cs"), program);

        // Every other C# block of the README is compiled in the same app, each as the body of a method whose
        // parameters are the block's free variables (a new block fails here until its section is listed below).
        File.WriteAllText(Path.Combine(app, "ReadmeSnippets.cs"), ReadmeSnippets(readme));
        await Dotnet.RunAsync(output, app, "build", "-c", "Release", "-p:TreatWarningsAsErrors=true");

        await using (var inMemory = await Dotnet.RunAppAsync(app, JwtConfiguration()))
        {
            await BobReceivesAlicesMessageAsync(inMemory);
        }

        await using var redis = await RedisServer.StartNewAsync();
        var withRedis = JwtConfiguration();
        withRedis["ConnectionStrings__Redis"] = redis.ConnectionString;
        await using var scaledOut = await Dotnet.RunAppAsync(app, withRedis);
        await BobReceivesAlicesMessageAsync(scaledOut);
    }

    private async Task BobReceivesAlicesMessageAsync(Dotnet.RunningApp app)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var bob = new ClientWebSocket();
        await bob.ConnectAsync(new Uri($"ws://127.0.0.1:{app.Port}/ws?access_token={Token("bob")}"), timeout.Token);

        using var http = new HttpClient { BaseAddress = app.HttpAddress };
        var body = new StringContent("""{"text":"hello Bob","to":["bob"]}""", Encoding.UTF8, "application/json");
        using (var anonymous = await http.PostAsync(new Uri("/conversations/c1/messages", UriKind.Relative), body, timeout.Token))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "/conversations/c1/messages") { Content = body };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token("alice"));
        using var response = await http.SendAsync(request, timeout.Token);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"POST answered {response.StatusCode}:\n{app.Output}");

        var frame = await ReceiveTextAsync(bob, timeout.Token);
        using var json = JsonDocument.Parse(frame);
        Assert.Equal("hello Bob", json.RootElement.GetProperty("text").GetString());
        Assert.Equal("alice", json.RootElement.GetProperty("sender").GetString());
        Assert.Equal("c1", json.RootElement.GetProperty("conversationId").GetString());

        using var health = await http.GetAsync(new Uri("/health", UriKind.Relative), timeout.Token);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        output.WriteLine($"port {app.Port}: bob received {frame}");
    }

    private static async Task<string> ReceiveTextAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        using var message = new MemoryStream();
        WebSocketReceiveResult result;
        do
        {
            result = await socket.ReceiveAsync(buffer, cancellationToken);
            Assert.Equal(WebSocketMessageType.Text, result.MessageType);
            message.Write(buffer, 0, result.Count);
        }
        while (!result.EndOfMessage);
        return Encoding.UTF8.GetString(message.ToArray());
    }

    /// <summary>How AddJwtBearer() reads its issuer, audience and signing key from configuration (as dotnet user-jwts writes them).</summary>
    private static Dictionary<string, string> JwtConfiguration() => new()
    {
        ["Authentication__Schemes__Bearer__ValidIssuer"] = Issuer,
        ["Authentication__Schemes__Bearer__ValidAudiences__0"] = Issuer,
        ["Authentication__Schemes__Bearer__SigningKeys__0__Issuer"] = Issuer,
        ["Authentication__Schemes__Bearer__SigningKeys__0__Value"] = Convert.ToBase64String(SigningKey),
    };

    /// <summary>An HS256 JWT for <paramref name="user"/>, valid for 10 minutes.</summary>
    private static string Token(string user)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = Base64Url("""{"alg":"HS256","typ":"JWT"}"""u8.ToArray());
        var payload = Base64Url(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["sub"] = user,
            ["iss"] = Issuer,
            ["aud"] = Issuer,
            ["nbf"] = now - 5,
            ["exp"] = now + 600,
        }));
        var signature = Base64Url(HMACSHA256.HashData(SigningKey, Encoding.ASCII.GetBytes($"{header}.{payload}")));
        return $"{header}.{payload}.{signature}";
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The free variables of the C# blocks outside Quick start, by the README section that holds them.</summary>
    private static readonly Dictionary<string, string> SnippetParameters = new(StringComparer.Ordinal)
    {
        ["Groups"] = "WebApplication app, string userId, string senderId, ReadOnlyMemory<byte> payload, ChatScale.AspNetCore.ChatScaleConnectionContext connection, CancellationToken ct",
    };

    private static string ReadmeSnippets(string readme)
    {
        var code = new StringBuilder("using ChatScale;\nusing ChatScale.AspNetCore;\nusing ChatScale.Groups;\n\ninternal static class ReadmeSnippets\n{\n");
        var quickStart = readme.IndexOf("\n## Quick start", StringComparison.Ordinal);
        var quickStartEnd = readme.IndexOf("\n## ", quickStart + 1, StringComparison.Ordinal);
        var count = 0;
        foreach (Match block in CodeBlock().Matches(readme))
        {
            if (block.Groups[1].Value != "csharp" || (block.Index > quickStart && block.Index < quickStartEnd))
            {
                continue;
            }

            var heading = readme.LastIndexOf("\n## ", block.Index, StringComparison.Ordinal);
            var title = readme[(heading + 4)..readme.IndexOf('\n', heading + 1)].Trim();
            Assert.True(SnippetParameters.TryGetValue(title, out var parameters), $"README's C# block in section '{title}' is not compiled by any test: list its free variables in SnippetParameters");
            code.Append(CultureInfo.InvariantCulture, $"    // README, \"{title}\"\n    internal static async Task Block{++count}({parameters})\n    {{\n");
            foreach (var line in block.Groups[2].Value.Split('\n'))
            {
                code.Append(line.Length == 0 ? "" : "        " + line).Append('\n');
            }

            code.Append("    }\n\n");
        }

        Assert.True(count > 0, "README has no C# block outside Quick start: drop this check or the wrapper");
        return code.Append("}\n").ToString();
    }

    private static string QuickStartSection(string readme)
    {
        var start = readme.IndexOf("\n## Quick start", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no '## Quick start' section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        return readme[start..(end < 0 ? readme.Length : end)];
    }

    private static List<string> CodeBlocks(string markdown, string language)
        => [.. CodeBlock().Matches(markdown).Where(m => m.Groups[1].Value == language).Select(m => m.Groups[2].Value)];

    [GeneratedRegex(@"^```(\w+)\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex CodeBlock();

    [GeneratedRegex(@"-n\s+(\S+)")]
    private static partial Regex NewWebName();
}
