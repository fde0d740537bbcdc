using System.Collections.Concurrent;
using System.Diagnostics;
using ChatScale.Redis;
using ChatScale.Reliability.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>
/// A burst of upgrades (hundreds of clients connecting at once, as after a node restart) never starves the node's
/// presence heartbeat or its dispatcher leases: the handshakes queue for <c>MaxConcurrentUpgrades</c> slots instead
/// of queueing hundreds of presence writes on the shared Redis connection.
/// </summary>
[Collection(SharedRedis.Name)]
public sealed class UpgradeBurstTests(RedisFixture redis, ITestOutputHelper output)
{
    private const int Burst = 300;
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan PresenceTimeout = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task A_connect_burst_never_delays_heartbeats_past_the_presence_timeout_nor_loses_a_lease()
    {
        var beats = new ConcurrentQueue<long>();
        var warnings = new ConcurrentQueue<string>();
        await using var node = await ChatHost.StartAsync(
            redis.ConnectionString,
            RedisFixture.UniquePrefix("burst"),
            o =>
            {
                o.HeartbeatInterval = Heartbeat;
                o.PresenceTimeout = PresenceTimeout;
            },
            configure: b =>
            {
                b.Services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(sp => new TimedHeartbeats(sp.GetRequiredService<RedisConnectionRegistry>(), beats)));
                b.Logging.AddProvider(new WarningRecorder(warnings)).SetMinimumLevel(LogLevel.Warning);
            });

        // Quiet baseline first.
        var clock = Stopwatch.StartNew();
        await Eventually.TrueAsync(() => clock.Elapsed > TimeSpan.FromSeconds(3), "a quiet baseline of heartbeats");
        var quiet = MaxGap(beats, 0);

        var burstStart = Stopwatch.GetTimestamp();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, Burst).Select(async i =>
        {
            var socket = Ws.Create($"burst-{i}");
            using var timeout = new CancellationTokenSource(Ws.Timeout);
            try
            {
                await socket.ConnectAsync(node.WebSocketUri, timeout.Token);
                return (Status: 101, Socket: socket);
            }
            catch (WebSocketException)
            {
                var status = (int)socket.HttpStatusCode;
                socket.Dispose();
                return (Status: status, Socket: (ClientWebSocket?)null);
            }
        }));
        var burstTime = Stopwatch.GetElapsedTime(burstStart);

        // Two more heartbeat periods after the burst, so a heartbeat stuck behind it would show.
        clock.Restart();
        await Eventually.TrueAsync(() => clock.Elapsed > Heartbeat * 2, "heartbeats after the burst");
        var during = MaxGap(beats, burstStart);
        var statuses = string.Join(", ", outcomes.GroupBy(o => o.Status).Select(g => $"{g.Count()} x {g.Key}"));
        output.WriteLine($"{Burst} concurrent upgrades in {burstTime.TotalSeconds:F2} s ({statuses}); heartbeat every {Heartbeat.TotalMilliseconds} ms: largest gap {quiet.TotalMilliseconds:F0} ms quiet, {during.TotalMilliseconds:F0} ms during the burst; warnings: {warnings.Count}");
        try
        {
            Assert.True(during < PresenceTimeout / 2, $"a heartbeat gap of {during.TotalMilliseconds:F0} ms during the burst");
            Assert.DoesNotContain(warnings, w => w.Contains("heartbeat", StringComparison.OrdinalIgnoreCase) || w.Contains("lease", StringComparison.OrdinalIgnoreCase));

            // Every handshake either got through or was told to retry later; nothing else.
            Assert.All(outcomes, o => Assert.Contains(o.Status, new[] { 101, 503 }));
            Assert.True(outcomes.Count(o => o.Status == 101) >= Burst / 2, statuses);
        }
        finally
        {
            foreach (var (_, socket) in outcomes)
            {
                socket?.Dispose();
            }
        }
    }

    private static TimeSpan MaxGap(IEnumerable<long> beats, long since)
    {
        var times = beats.Where(t => t >= since).Order().ToArray();
        var max = TimeSpan.Zero;
        for (var i = 1; i < times.Length; i++)
        {
            var gap = Stopwatch.GetElapsedTime(times[i - 1], times[i]);
            max = gap > max ? gap : max;
        }

        return since == 0 || times.Length == 0 ? max : Max(max, Stopwatch.GetElapsedTime(since, times[0]));
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    /// <summary>The real Redis registry, timestamping each heartbeat that Redis confirmed.</summary>
    private sealed class TimedHeartbeats(RedisConnectionRegistry inner, ConcurrentQueue<long> beats) : IConnectionRegistry
    {
        public ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default) => inner.RegisterAsync(connection, cancellationToken);

        public ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default) => inner.UnregisterAsync(connection, cancellationToken);

        public ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default) => inner.LocateAsync(userIds, cancellationToken);

        public ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default) => inner.GetConnectionCountAsync(userId, cancellationToken);

        public async ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default)
        {
            await inner.HeartbeatAsync(nodeId, cancellationToken);
            beats.Enqueue(Stopwatch.GetTimestamp());
        }

        public ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default) => inner.RemoveNodeAsync(nodeId, cancellationToken);
    }

    private sealed class WarningRecorder(ConcurrentQueue<string> warnings) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                warnings.Enqueue($"{eventId.Id} {formatter(state, exception)}");
            }
        }

        public void Dispose()
        {
        }
    }
}
