using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using ChatScale.Reliability.Tests.Infrastructure;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>
/// A huge body is refused from its Content-Length, before it is read or parsed: sixteen concurrent 25 MB bodies
/// from a non-participant cost the node a bounded amount of memory, not 16 x 25 MB.
/// </summary>
[Collection(SharedRedis.Name)]
public sealed class BodyLimitTests(RedisFixture redis, ITestOutputHelper output)
{
    private const long BodyBytes = 25L * 1024 * 1024;
    private const int Concurrent = 16;

    [Fact]
    public async Task Oversized_bodies_from_a_non_participant_get_413_before_they_are_read()
    {
        var store = new InMemoryChatStore();
        await using var node = await SampleNode.StartAsync("body-n1", redis.ConnectionString, RedisFixture.UniquePrefix("body"), store);
        var (alice, _) = await node.SignInAsync("alice");
        var (_, malloryToken) = await node.SignInAsync("mallory");
        var created = await alice.PostAsJsonAsync("/api/conversations", new { title = "private", participants = new[] { "bob" } });
        var conversation = (await created.Content.ReadFromJsonAsync<Conversation>(ChatEvents.Json))!.Id;

        // Warm the path once so JIT and pools are not counted.
        var (warmStatus, _) = await PostHugeAsync(node.BaseAddress, $"/api/conversations/{conversation}/messages", malloryToken);
        Assert.Equal(413, warmStatus);

        GC.Collect();
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var results = await Task.WhenAll(Enumerable.Range(0, Concurrent).Select(_ => PostHugeAsync(node.BaseAddress, $"/api/conversations/{conversation}/messages", malloryToken)));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        var sent = results.Sum(r => r.BytesSent);
        output.WriteLine($"{Concurrent} x {BodyBytes / (1024 * 1024)} MB bodies: statuses {string.Join(",", results.Select(r => r.Status).Distinct())}; the clients got {sent / (1024.0 * 1024):F1} MB onto the wire before the answer; the process allocated {allocated / (1024.0 * 1024):F1} MB meanwhile");

        Assert.All(results, r => Assert.Equal(413, r.Status));

        // Reading and parsing even one body would allocate more than 25 MB; sixteen, over 400 MB.
        Assert.True(allocated < 48L * 1024 * 1024, $"{allocated / (1024.0 * 1024):F1} MB allocated while refusing the bodies");
        Assert.True(sent < Concurrent * BodyBytes / 2, $"{sent} bytes were taken in before the refusals");

        // The node still serves: a participant's normal message is accepted.
        var ok = await alice.PostAsJsonAsync($"/api/conversations/{conversation}/messages", new { text = "hello" });
        Assert.Equal(HttpStatusCode.Accepted, ok.StatusCode);
        alice.Dispose();
    }

    // A raw HTTP/1.1 POST declaring a 25 MB JSON body, written in 64 KB chunks until the server answers.
    private static async Task<(int Status, long BytesSent)> PostHugeAsync(Uri baseAddress, string path, string token)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, baseAddress.Port);
        var stream = tcp.GetStream();
        var head = $"POST {path} HTTP/1.1\r\nHost: {baseAddress.Authority}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {BodyBytes}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        using var answered = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var response = ReadStatusAsync(stream, answered.Token);
        var chunk = Encoding.ASCII.GetBytes("{\"text\":\"" + new string('x', (64 * 1024) - 9));
        long sent = 0;
        try
        {
            while (!response.IsCompleted && sent < BodyBytes)
            {
                var count = (int)Math.Min(chunk.Length, BodyBytes - sent);
                var write = stream.WriteAsync(chunk.AsMemory(0, count), answered.Token).AsTask();
                if (await Task.WhenAny(write, response) == response)
                {
                    break;
                }

                await write;
                sent += count;
            }
        }
        catch (IOException)
        {
            // The server closed the connection after answering.
        }

        return (await response, sent);
    }

    private static async Task<int> ReadStatusAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[4096];
        var text = new StringBuilder();
        while (!text.ToString().Contains("\r\n", StringComparison.Ordinal))
        {
            var read = await stream.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                return -1;
            }

            text.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }

        // "HTTP/1.1 413 Payload Too Large"
        return int.Parse(text.ToString().Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
    }
}
