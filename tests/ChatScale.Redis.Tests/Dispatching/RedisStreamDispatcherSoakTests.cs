using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using ChatScale.Redis.Internal;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// Every fault in one run, on the test's own redis-server with AOF: a child-process owner SIGKILLed mid-work, an
/// in-process owner crashing (abandoned: no release), takeovers with late reads refused and consumers cleaned up,
/// and a Redis restart; afterwards every accepted job has completed (its fenced side effect is recorded) or is
/// dead-lettered, and no entry is left in any stream or pending list.
/// </summary>
public sealed class RedisStreamDispatcherSoakTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TakeoversKillsAndARedisRestart_EveryAcceptedJobCompletesOrIsDeadLettered_AndNothingIsLeftPending()
    {
        await using var server = await RedisServer.StartNewAsync("--appendonly", "yes", "--appendfsync", "always");
        var prefix = RedisFixture.UniquePrefix("soak");
        using var child = StartChild(server.ConnectionString, prefix, out var childLines);
        await using var probe = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString + ",abortConnect=false,connectRetry=10");
        var db = probe.GetDatabase();

        JobBehavior<Numbered> Behavior(string host) => new(async (job, context, _) =>
        {
            var start = Stopwatch.GetTimestamp();
            await Task.Delay(job.Seq % 7 == 0 ? 40 : 2, CancellationToken.None);
            if (job.Seq % 97 == 13)
            {
                throw new InvalidOperationException("poison job: dead-lettered after MaxAttempts"); // always fails
            }

            await ChildDispatcher.RecordAsync(db, prefix, host, job, context, start);
        });
        void Options(DispatcherOptions d)
        {
            d.Partitions = 1; // as the child
            d.MaxAttempts = 3;
            d.InitialBackoff = TimeSpan.FromMilliseconds(50);
        }

        void Lease(RedisDispatcherOptions r) => r.LeaseTtl = TimeSpan.FromSeconds(1);
        var a = await DispatcherHost.StartAsync(server.ConnectionString, prefix, "node-a", b => b.AddBehavior(Behavior("node-a")), Options, Lease);
        await using var b = await DispatcherHost.StartAsync(server.ConnectionString, prefix, "node-b", b => b.AddBehavior(Behavior("node-b")), Options, Lease);
        await Eventually.TrueAsync(() => childLines.Any(l => l.StartsWith("owns ", StringComparison.Ordinal)) || a.Dispatcher.OwnedPartitionCount + b.Dispatcher.OwnedPartitionCount > 0, "an owner", TimeSpan.FromSeconds(60));

        var accepted = new ConcurrentDictionary<int, string>();
        using var stop = new CancellationTokenSource();
        var enqueuer = Task.Run(async () =>
        {
            for (var seq = 0; !stop.IsCancellationRequested; seq++)
            {
                try
                {
                    var key = seq % 3 == 0 ? null : "c" + (seq % 8).ToString(CultureInfo.InvariantCulture);
                    var id = await b.EnqueueAsync(new Numbered(key ?? "u" + seq.ToString(CultureInfo.InvariantCulture), seq), key);
                    accepted[seq] = id;
                }
                catch (BackplaneUnavailableException)
                {
                    // Refused during the restart: not accepted, nothing promised.
                }

                await Task.Delay(3);
            }
        });

        await Eventually.TrueAsync(() => accepted.Count >= 150, "150 jobs", TimeSpan.FromSeconds(60));
        child.Kill(entireProcessTree: true); // SIGKILL: no release, its lease and consumer are left behind
        await Eventually.TrueAsync(() => accepted.Count >= 300, "300 jobs", TimeSpan.FromSeconds(60));
        await a.Dispatcher.AbandonAsync(); // an in-process crash: nothing released either
        await a.DisposeAsync();
        await Eventually.TrueAsync(() => accepted.Count >= 450, "450 jobs", TimeSpan.FromSeconds(60));
        await server.StopAsync();
        await Task.Delay(500);
        await server.StartAsync();
        await using var c = await DispatcherHost.StartAsync(server.ConnectionString, prefix, "node-c", b => b.AddBehavior(Behavior("node-c")), Options, Lease);
        await Eventually.TrueAsync(() => accepted.Count >= 600, "600 jobs", TimeSpan.FromSeconds(60));
        await stop.CancelAsync();
        await enqueuer;

        var keys = new RedisKeyspace(prefix, sharded: false);
        await Eventually.TrueAsync(
            async () => await db.StreamLengthAsync(keys.Partition(0, "jobs")) == 0 && await db.StreamLengthAsync(keys.SharedJobs) == 0,
            "every stream to drain",
            TimeSpan.FromSeconds(90));

        var done = (await db.ListRangeAsync(ChildDispatcher.Records(prefix))).Select(r => int.Parse(((string)r!).Split('|')[1], CultureInfo.InvariantCulture)).ToHashSet();
        var dead = (await c.Dispatcher.GetDeadLettersAsync(10_000)).Select(d => d.JobId).ToHashSet(StringComparer.Ordinal);
        var missing = accepted.Where(p => !done.Contains(p.Key) && !dead.Contains(p.Value)).Select(p => p.Key).Order().ToArray();
        output.WriteLine($"{accepted.Count} accepted, {done.Count} completed, {dead.Count} dead-lettered, missing: {string.Join(',', missing)}");
        Assert.Empty(missing);
        Assert.All(dead, id => Assert.Contains(accepted, p => p.Value == id && p.Key % 97 == 13));
        Assert.Equal(0, (await db.StreamPendingAsync(keys.Partition(0, "jobs"), DispatcherScripts.Group)).PendingMessageCount);
        Assert.Equal(0, (await db.StreamPendingAsync(keys.SharedJobs, DispatcherScripts.Group)).PendingMessageCount);
    }

    private static Process StartChild(string connectionString, string prefix, out ConcurrentQueue<string> lines)
    {
        var output = new ConcurrentQueue<string>();
        var child = Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "exec", typeof(ChildDispatcher).Assembly.Location, "dispatcher-child", connectionString, prefix },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        child.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                output.Enqueue(line);
            }
        };
        child.BeginOutputReadLine();
        lines = output;
        return child;
    }
}
