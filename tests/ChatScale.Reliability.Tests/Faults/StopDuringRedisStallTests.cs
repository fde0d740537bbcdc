using System.Diagnostics;
using System.Net.WebSockets;
using ChatScale.Reliability.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>
/// A deploy while Redis does not answer: the node is stopped gracefully while its Redis is held by
/// <c>CLIENT PAUSE ... ALL</c> (every command of every client waits, replies included). The host's stop must throw
/// nothing into the host (before the fix: the group node's unsubscribe threw <c>RedisTimeoutException</c> out of
/// <c>Host.StopAsync</c>), close its clients with 1001 (going away) so they reconnect elsewhere, and end soon after the
/// shutdown deadline instead of waiting for Redis command timeouts (before: 21.3 s against a 3 s deadline, from the
/// node's presence removal and the dispatcher's clean-up each waiting out 5 s timeouts one after the other). The
/// disposal that follows, still paused, must not wait for Redis either (before: 7 s, the Redis connection's graceful
/// close waiting out its command timeout).
/// </summary>
public sealed class StopDuringRedisStallTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(3);

    // What a stop may take past the deadline: Kestrel's 1 s for aborted connections, the dispatcher's grace for its
    // handlers and loops (half the lease TTL, at most 5 s) and its 1 s for clean-up; 1 s of slack for this machine.
    private static readonly TimeSpan AllowedOverrun = TimeSpan.FromSeconds(1 + 5 + 1 + 1);

    [Fact]
    public async Task GracefulStop_WhileRedisIsPaused_ThrowsNothingIntoTheHost_AndClosesClientsWith1001()
    {
        await using var redis = await RedisServer.StartNewAsync();
        var log = new TimedLog();
        var host = await ChatHost.StartAsync(
            redis.ConnectionString,
            configure: b =>
            {
                b.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
                b.Logging.SetMinimumLevel(LogLevel.Debug);
                b.Logging.AddProvider(log);
            });
        var clients = new List<ClientWebSocket>();
        for (var i = 0; i < 3; i++)
        {
            clients.Add(await host.ConnectAsync($"user-{i}"));
        }

        await host.Broadcaster.PublishAsync(["user-0"], "before the stall"u8.ToArray());
        var closes = clients.Select(ReadUntilCloseAsync).ToList();

        // Longer than the stop may take; CLIENT UNPAUSE below returns only when the pause ends (redis-cli is paused too).
        await AdminAsync(redis, "CLIENT", "PAUSE", "15000", "ALL");
        try
        {
            var clock = Stopwatch.StartNew();
            log.Clock = clock;
            await host.App.StopAsync(CancellationToken.None); // throws if a hosted service throws into the stop
            var stopped = clock.Elapsed;
            foreach (var line in log.Lines)
            {
                output.WriteLine(line);
            }

            output.WriteLine($"stopped in {stopped.TotalMilliseconds:F0} ms (deadline {ShutdownTimeout.TotalMilliseconds} ms)");
            Assert.True(stopped < ShutdownTimeout + AllowedOverrun, $"The stop took {stopped}, past the deadline ({ShutdownTimeout}) by more than {AllowedOverrun}.");

            foreach (var close in closes)
            {
                var status = await close.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
            }

            // After StopAsync the host disposes its services before the process exits: still paused, that is part of
            // the deploy too.
            clock.Restart();
            await host.App.DisposeAsync();
            var disposed = clock.Elapsed;
            output.WriteLine($"disposed in {disposed.TotalMilliseconds:F0} ms while Redis was still paused");
            Assert.True(disposed < TimeSpan.FromSeconds(2), $"Disposing the stopped host took {disposed} (the Redis connection's graceful close waits out its command timeout).");
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

    private sealed class TimedLog : ILoggerProvider, ILogger
    {
        public Stopwatch? Clock { get; set; }

        public System.Collections.Concurrent.ConcurrentQueue<string> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => Clock is not null;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (Clock is { } clock)
            {
                Lines.Enqueue($"{clock.ElapsedMilliseconds,6} ms {logLevel} {eventId.Id} {formatter(state, exception)} {exception?.GetType().Name}");
            }
        }

        public void Dispose()
        {
        }
    }
}
