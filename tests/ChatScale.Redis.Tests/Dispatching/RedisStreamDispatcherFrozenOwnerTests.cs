using System.Diagnostics;
using ChatScale.Testing;
using System.Globalization;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>An owner frozen (SIGSTOP) past its lease in a child process, then resumed (SIGCONT).</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherFrozenOwnerTests(RedisFixture redis, ITestOutputHelper output)
{
    [Fact]
    public async Task OwnerFrozenPastItsLease_ThenResumed_ItsLateSideEffectAndAckAreRefused_AndItsLateReadsTakeNothing()
    {
        var prefix = RedisFixture.UniquePrefix("frozen");
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var child = Process.Start(new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "exec", typeof(ChildDispatcher).Assembly.Location, "dispatcher-child", redis.ConnectionString, prefix },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        child.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                lines.Enqueue(line);
            }
        };
        child.BeginOutputReadLine();
        try
        {
            await Eventually.TrueAsync(() => lines.Any(l => l.StartsWith("owns ", StringComparison.Ordinal)), "the child to own the partition", TimeSpan.FromSeconds(60));
            var db = (await redis.ConnectAsync()).GetDatabase();
            var parentBehavior = new JobBehavior<Numbered>(async (job, context, _) =>
            {
                var start = Stopwatch.GetTimestamp();
                await Task.Delay(10, CancellationToken.None);
                await ChildDispatcher.RecordAsync(db, prefix, "parent", job, context, start);
            });
            await using var parent = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "parent", b => b.AddBehavior(parentBehavior), d => d.Partitions = 1, r => r.LeaseTtl = TimeSpan.FromSeconds(1), start: false);
            for (var seq = 0; seq < 4; seq++)
            {
                await parent.EnqueueAsync(new Numbered("conv", seq), "conv");
            }

            await Eventually.TrueAsync(() => lines.Any(l => l.StartsWith("running 0 ", StringComparison.Ordinal)), "the child to start job 0", TimeSpan.FromSeconds(30));
            Assert.Equal(0, ProcessSignal.Send(child.Id, "STOP")); // frozen in the middle of job 0, holding the lease
            await parent.Dispatcher.StartAsync(CancellationToken.None); // takes over once the lease expires
            await Eventually.TrueAsync(async () => await db.ListLengthAsync(ChildDispatcher.Records(prefix)) == 4, "the parent to run the conversation", TimeSpan.FromSeconds(30));

            Assert.Equal(0, ProcessSignal.Send(child.Id, "CONT"));
            await Eventually.TrueAsync(() => lines.Contains("fenced-out 0"), "the child's late side effect to be refused", TimeSpan.FromSeconds(30));
            // The late ack follows the late side effect; ask for the child's refused-command log until it is there.
            await Eventually.TrueAsync(
                async () =>
                {
                    await child.StandardInput.WriteLineAsync("logs");
                    await Task.Delay(200);
                    return lines.Any(l => l.StartsWith("log 2516", StringComparison.Ordinal) && l.Contains("settle", StringComparison.Ordinal));
                },
                "the child's late ack to be refused",
                TimeSpan.FromSeconds(30));
            foreach (var line in lines)
            {
                output.WriteLine("child: " + line);
            }

            // The late ack of job 0 was refused (fenced); its late reads took nothing: no entry is left pending.
            Assert.Contains(lines, l => l.StartsWith("log 2516", StringComparison.Ordinal) && l.Contains("settle", StringComparison.Ordinal));
            var stream = new RedisKeyspace(prefix, sharded: false).Partition(0, "jobs");
            await Eventually.TrueAsync(async () => await db.StreamLengthAsync(stream) == 0, "an empty stream");
            Assert.Equal(0, (await db.StreamPendingAsync(stream, DispatcherScripts.Group)).PendingMessageCount);

            // Accepted side effects: every job once, by the parent, in enqueue order, no two overlapping in time.
            var records = (await db.ListRangeAsync(ChildDispatcher.Records(prefix))).Select(r => ((string)r!).Split('|')).ToArray();
            foreach (var r in records)
            {
                output.WriteLine(string.Join(' ', r));
            }

            Assert.All(records, r => Assert.Equal("parent", r[0]));
            Assert.Equal(["0", "1", "2", "3"], records.Select(r => r[1]));
            for (var i = 1; i < records.Length; i++)
            {
                Assert.True(long.Parse(records[i][3], CultureInfo.InvariantCulture) >= long.Parse(records[i - 1][4], CultureInfo.InvariantCulture), "attempts of one key overlapped");
            }
        }
        finally
        {
            foreach (var line in lines)
            {
                output.WriteLine("child said: " + line);
            }

            ProcessSignal.Send(child.Id, "CONT");
            child.Kill(entireProcessTree: true);
            await child.WaitForExitAsync();
        }
    }
}
