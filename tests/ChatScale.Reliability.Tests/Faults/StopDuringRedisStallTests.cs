using System.Diagnostics;
using System.Net.WebSockets;
using ChatScale.Reliability.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>
/// A deploy while Redis does not answer: the node is stopped gracefully while its Redis is held by
/// <c>CLIENT PAUSE ... ALL</c> (every command of every client waits, replies included). The host's stop must throw
/// nothing into the host (before the fix: the group node's unsubscribe threw <c>RedisTimeoutException</c> out of
/// <c>Host.StopAsync</c>) and still close its clients with 1001 (going away) so they reconnect elsewhere. How long it
/// takes is printed: it still overruns the shutdown deadline (a known limit, docs/reliability.md).
/// </summary>
public sealed class StopDuringRedisStallTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task GracefulStop_WhileRedisIsPaused_ThrowsNothingIntoTheHost_AndClosesClientsWith1001()
    {
        await using var redis = await RedisServer.StartNewAsync();
        var host = await ChatHost.StartAsync(
            redis.ConnectionString,
            configure: b => b.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout));
        var clients = new List<ClientWebSocket>();
        for (var i = 0; i < 3; i++)
        {
            clients.Add(await host.ConnectAsync($"user-{i}"));
        }

        await host.Broadcaster.PublishAsync(["user-0"], "before the stall"u8.ToArray());
        var closes = clients.Select(ReadUntilCloseAsync).ToList();

        await AdminAsync(redis, "CLIENT", "PAUSE", "60000", "ALL");
        try
        {
            var clock = Stopwatch.StartNew();
            await host.App.StopAsync(CancellationToken.None); // throws if a hosted service throws into the stop
            output.WriteLine($"stopped in {clock.ElapsedMilliseconds} ms (deadline {ShutdownTimeout.TotalMilliseconds} ms)");
            // Not asserted yet: the stop took 21.5 s against the 3 s deadline here (docs/reliability.md, known limits).

            foreach (var close in closes)
            {
                var status = await close.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
            }
        }
        finally
        {
            await AdminAsync(redis, "CLIENT", "UNPAUSE");
            await host.App.DisposeAsync();
        }
    }

    // redis-cli, not a multiplexer: a multiplexer's handshake and pings would wait behind the pause themselves.
    private static async Task AdminAsync(RedisServer redis, params string[] command)
    {
        var cli = new ProcessStartInfo(RedisServer.FindOnPath("redis-cli") ?? "redis-cli") { RedirectStandardOutput = true };
        cli.ArgumentList.Add("-p");
        cli.ArgumentList.Add(redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var word in command)
        {
            cli.ArgumentList.Add(word);
        }

        using var process = Process.Start(cli)!;
        var reply = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal("OK", reply.Trim());
    }

    private static async Task<WebSocketCloseStatus?> ReadUntilCloseAsync(ClientWebSocket socket)
    {
        var buffer = new byte[4096];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return result.CloseStatus;
            }
        }
    }
}
