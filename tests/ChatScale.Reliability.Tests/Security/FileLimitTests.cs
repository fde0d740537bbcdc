using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using ChatScale.Reliability.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>
/// A node under a low open-file limit (a child process started with <c>ulimit -n 512</c>; a .NET web app holds
/// ~270 descriptors just for its assemblies, so 256 cannot even start) fills up to the cap it derives from that limit, answers 503 with Retry-After past it, survives a flood of idle sockets past the limit
/// itself, and keeps serving the connections it holds.
/// </summary>
[Collection(SharedRedis.Name)]
public sealed class FileLimitTests(RedisFixture redis, ITestOutputHelper output)
{
    private const int FileLimit = 512;
    private const int PerUser = 8;

    [Fact]
    public async Task A_node_at_its_file_limit_derived_cap_answers_503_with_retry_after_and_stays_up()
    {
        await using var node = await ChildSampleNode.StartAsync(FileLimit, redis.ConnectionString, RedisFixture.UniquePrefix("fd"));
        output.WriteLine($"child {node.ProcessId}: {node.OpenFiles()} descriptors open at start (limit {FileLimit})");
        var users = new List<(HttpClient Http, string Token)>();
        async Task<string> TokenForAsync(int connection)
        {
            while (users.Count <= connection / PerUser)
            {
                users.Add(await node.SignInAsync($"fd-user-{users.Count}"));
            }

            return users[connection / PerUser].Token;
        }

        var open = new List<ClientWebSocket>();
        try
        {
            // Open connections until the node refuses one.
            (int Status, string? RetryAfter)? refusal = null;
            for (var i = 0; refusal is null && i < FileLimit; i++)
            {
                var (status, retry, socket) = await TryConnectAsync(node, await TokenForAsync(i));
                if (socket is null)
                {
                    refusal = (status, retry);
                }
                else
                {
                    open.Add(socket);
                }
            }

            output.WriteLine($"{open.Count} connections open, then {refusal}; {node.OpenFiles()} descriptors open");
            Assert.Equal(((int)HttpStatusCode.ServiceUnavailable, "5"), refusal);

            // Exactly the cap the node derived from its limit, and logged (event 3014).
            var logged = Regex.Match(node.Output, @"WebSocket node cap (\d+) connections \(open-file limit (\d+), (\d+) open at start");
            Assert.True(logged.Success, node.Output);
            Assert.Equal(FileLimit.ToString(CultureInfo.InvariantCulture), logged.Groups[2].Value);
            Assert.Equal(int.Parse(logged.Groups[1].Value, CultureInfo.InvariantCulture), open.Count);
            Assert.InRange(open.Count, 16, FileLimit / 2);

            // Refusals cost nothing lasting: many more, all 503, and the node does not run out of descriptors.
            for (var i = 0; i < 40; i++)
            {
                var (status, _, socket) = await TryConnectAsync(node, await TokenForAsync(open.Count + PerUser));
                socket?.Dispose();
                Assert.Equal((int)HttpStatusCode.ServiceUnavailable, status);
            }

            // A flood of idle TCP connections, more than the whole file limit: Kestrel's connection cap (a quarter of
            // the limit, set by AddChatScale) closes those past it, so accept never reaches EMFILE.
            Assert.False(node.HasExited, node.Output);
            var cpuBefore = CpuTime(node.ProcessId);
            var flood = new List<TcpClient>();
            for (var i = 0; i < FileLimit; i++)
            {
                var tcp = new TcpClient();
                try
                {
                    await tcp.ConnectAsync(IPAddress.Loopback, node.BaseAddress.Port);
                }
                catch (SocketException)
                {
                    // The listen backlog was full: that is the kernel refusing, not the node failing.
                }

                flood.Add(tcp);
            }

            var holding = Stopwatch.StartNew();
            await Eventually.TrueAsync(() => holding.Elapsed > TimeSpan.FromSeconds(2), "the flood to be held for 2 s");
            Assert.False(node.HasExited, node.Output);
            output.WriteLine($"flood of {flood.Count} idle sockets: child used {(CpuTime(node.ProcessId) - cpuBefore).TotalMilliseconds:F0} ms CPU in {holding.Elapsed.TotalSeconds:F1} s; {node.OpenFiles()} descriptors open");
            Assert.False(node.HasExited, node.Output);
            foreach (var tcp in flood)
            {
                tcp.Dispose();
            }

            await Eventually.TrueAsync(node.IsHealthyAsync, "the node to answer /health after the flood");

            // Every connection it holds still receives: one message to a conversation of all the users.
            var (http, _) = (users[0].Http, users[0].Token);
            var created = await http.PostAsJsonAsync("/api/conversations", new { title = "full node", participants = users.Skip(1).Select((_, i) => $"fd-user-{i + 1}").ToArray() });
            created.EnsureSuccessStatusCode();
            var conversation = (await created.Content.ReadFromJsonAsync<IdOnly>())!.Id;
            (await http.PostAsJsonAsync($"/api/conversations/{conversation}/messages", new { text = "still here" })).EnsureSuccessStatusCode();
            foreach (var socket in open)
            {
                Assert.Contains("still here", await socket.ReceiveTextAsync(), StringComparison.Ordinal);
            }

            // And once one closes, a new connection gets its slot.
            await open[0].CloseQuietlyAsync();
            open.RemoveAt(0);
            await Eventually.TrueAsync(
                async () =>
                {
                    var (_, _, socket) = await TryConnectAsync(node, await TokenForAsync(open.Count + PerUser));
                    if (socket is not null)
                    {
                        open.Add(socket);
                    }

                    return socket is not null;
                },
                "a freed slot to be taken");
            Assert.False(node.HasExited, node.Output);
        }
        finally
        {
            foreach (var socket in open)
            {
                socket.Dispose();
            }

            foreach (var (http, _) in users)
            {
                http.Dispose();
            }
        }
    }

    private static async Task<(int Status, string? RetryAfter, ClientWebSocket? Socket)> TryConnectAsync(ChildSampleNode node, string token)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        using var timeout = new CancellationTokenSource(Ws.Timeout);
        try
        {
            await socket.ConnectAsync(node.WebSocketUri(token), timeout.Token);
            return (101, null, socket);
        }
        catch (WebSocketException)
        {
            var retry = socket.HttpResponseHeaders?.TryGetValue("Retry-After", out var values) == true ? string.Join(",", values) : null;
            var status = (int)socket.HttpStatusCode;
            socket.Dispose();
            return (status, retry, null);
        }
    }

    private static TimeSpan CpuTime(int pid)
    {
        // /proc/<pid>/stat fields 14 and 15: user and system time in clock ticks (100 per second on Linux).
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return TimeSpan.FromSeconds((long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture)) / 100.0);
    }

    private sealed record IdOnly(string Id);
}
