using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>
/// The sample chat app in a child process (<c>dotnet ChatScale.Samples.Chat.dll</c>, copied next to the tests) under
/// a low open-file limit set by <c>ulimit -n</c> in a bash wrapper, so exhausting its descriptors cannot hurt the
/// test process. Development environment (dev token endpoint), on Redis, in-memory store.
/// </summary>
internal sealed class ChildSampleNode : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ChildSampleNode(Process process, int port)
    {
        _process = process;
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
    }

    public Uri BaseAddress { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What the child wrote to stdout and stderr so far (for failure messages).</summary>
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

    public static async Task<ChildSampleNode> StartAsync(int openFileLimit, string redis, string keyPrefix, params string[] extraArgs)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "ChatScale.Samples.Chat.dll");
        var port = FreePort();
        var start = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"ulimit -n {openFileLimit} && exec dotnet \"$@\"");
        start.ArgumentList.Add("bash");
        foreach (var arg in (string[])[dll, "--environment=Development", $"--urls=http://127.0.0.1:{port}", $"--ConnectionStrings:Redis={redis}",
            $"--ChatScale:Redis:KeyPrefix={keyPrefix}", "--ChatScale:NodeId=fd-limited", "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:ChatScale=Information", .. extraArgs])
        {
            start.ArgumentList.Add(arg);
        }

        // The test host's own runtime settings (additional deps, startup hooks, test-platform variables) must not
        // reach a separate app: with them the child cannot load parts of its shared framework.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("COREHOST_", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)
            || k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }

        start.Environment["DOTNET_gcServer"] = "0";
        var process = Process.Start(start)!;
        var node = new ChildSampleNode(process, port);
        process.OutputDataReceived += (_, e) => node.Append(e.Data);
        process.ErrorDataReceived += (_, e) => node.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await Eventually.TrueAsync(async () => process.HasExited || await node.IsHealthyAsync(), "the child node to answer /health", TimeSpan.FromSeconds(60));
            Assert.False(process.HasExited, $"the child node exited: {node.Output}");
            return node;
        }
        catch
        {
            await node.DisposeAsync();
            throw;
        }
    }

    /// <summary>Open descriptors of the child, from <c>/proc</c>.</summary>
    public int OpenFiles() => Directory.GetFiles($"/proc/{_process.Id}/fd").Length;

    public async Task<bool> IsHealthyAsync()
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            return (await http.GetAsync("/health")).StatusCode == HttpStatusCode.OK;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }

    public async Task<(HttpClient Http, string Token)> SignInAsync(string user)
    {
        var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<TokenResponse>())!.Token;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return (http, token);
    }

    public Uri WebSocketUri(string token) => new($"ws://{BaseAddress.Authority}/ws?access_token={Uri.EscapeDataString(token)}");

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(timeout.Token);
        }

        _process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private sealed record TokenResponse(string User, string Token);
}
