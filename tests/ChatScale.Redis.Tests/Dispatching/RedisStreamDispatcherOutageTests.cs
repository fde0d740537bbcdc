using System.Collections.Concurrent;
using System.Diagnostics;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>Stops and starts the test's own redis-server (with AOF persistence), never the shared one.</summary>
public sealed class RedisStreamDispatcherOutageTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RedisRestartedWhileJobsAreQueuedAndBeingEnqueued_EnqueueFailsClearly_AndEveryAcceptedJobIsHandled()
    {
        // Accepted means acknowledged by Redis; surviving a restart needs persistence, as in production.
        await using var server = await RedisServer.StartNewAsync("--appendonly", "yes", "--appendfsync", "always");
        var prefix = RedisFixture.UniquePrefix("dispatch-outage");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handled = new ConcurrentDictionary<string, int>();
        var behavior = new JobBehavior<Numbered>(async (_, context, cancellationToken) =>
        {
            await gate.Task.WaitAsync(cancellationToken);
            handled.AddOrUpdate(context.JobId, 1, static (_, n) => n + 1);
        });
        await using var host = await DispatcherHost.StartAsync(
            server.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), d => d.InitialBackoff = TimeSpan.FromMilliseconds(20), r => r.LeaseTtl = TimeSpan.FromSeconds(5));

        // An enqueuer keeps going through the whole outage, half keyed, half not.
        var accepted = new ConcurrentBag<string>();
        var failures = new ConcurrentQueue<Exception>();
        using var stopEnqueuing = new CancellationTokenSource();
        var enqueuer = Task.Run(async () =>
        {
            for (var i = 0; !stopEnqueuing.IsCancellationRequested; i++)
            {
                try
                {
                    accepted.Add(await host.EnqueueAsync(new Numbered($"c{i % 5}", i), i % 2 == 0 ? $"c{i % 5}" : null));
                }
                catch (Exception ex)
                {
                    failures.Enqueue(ex);
                }

                await Task.Delay(5);
            }
        });

        await Eventually.TrueAsync(() => accepted.Count >= 100, "100 jobs queued before the outage");
        await server.StopAsync();
        await Eventually.TrueAsync(() => !failures.IsEmpty, "an enqueue to fail while Redis is down");

        var clock = Stopwatch.StartNew();
        var direct = await Assert.ThrowsAsync<BackplaneUnavailableException>(() => host.EnqueueAsync(new Numbered("c0", -1), "c0").AsTask());
        output.WriteLine($"enqueue while down failed after {clock.ElapsedMilliseconds} ms: {direct.Message}");
        var acceptedBeforeRestart = accepted.Count;

        await server.StartAsync();
        await Eventually.TrueAsync(() => accepted.Count >= acceptedBeforeRestart + 100, "100 more jobs accepted after the restart", TimeSpan.FromSeconds(60));
        await stopEnqueuing.CancelAsync();
        await enqueuer;
        gate.TrySetResult();

        var ids = accepted.ToArray();
        await Eventually.TrueAsync(() => ids.All(handled.ContainsKey), $"all {ids.Length} accepted jobs to be handled", TimeSpan.FromSeconds(90));
        var duplicates = handled.Count(p => p.Value > 1);
        output.WriteLine($"{ids.Length} accepted ({acceptedBeforeRestart} before the restart), {failures.Count} enqueue calls failed during the outage, "
            + $"{handled.Count} distinct jobs handled, {duplicates} handled more than once (at-least-once)");

        foreach (var record in host.Logs.GetSnapshot().Where(r => r.Id.Id is 2505 or 2511 or 2512))
        {
            output.WriteLine($"{record.Id.Id}: {record.Message}");
        }

        // Each failure says what is known: never sent (nothing stored, so that job never runs) or sent but not
        // confirmed (the outage cut the reply: the job may have been stored, and then it runs under the id named).
        Assert.All(failures, f => Assert.IsType<BackplaneUnavailableException>(f));
        var notStored = failures.Cast<BackplaneUnavailableException>().Where(f => !f.MayHaveSucceeded).ToList();
        var unknown = failures.Cast<BackplaneUnavailableException>().Where(f => f.MayHaveSucceeded).ToList();
        Assert.All(notStored, f => Assert.StartsWith("Redis is unreachable", f.Message, StringComparison.Ordinal));
        Assert.All(unknown, f => Assert.StartsWith("Redis did not confirm", f.Message, StringComparison.Ordinal));
        Assert.NotEmpty(notStored);
        Assert.All(notStored, f => Assert.False(handled.ContainsKey(JobIdIn(f.Message)), $"a job whose enqueue said it was not stored ran: {f.Message}"));
        output.WriteLine($"failures: {notStored.Count} never sent, {unknown.Count} unconfirmed, of which {unknown.Count(f => handled.ContainsKey(JobIdIn(f.Message)))} ran");
        Assert.Empty(await host.Dispatcher.GetDeadLettersAsync());
    }

    private static string JobIdIn(string message)
        => System.Text.RegularExpressions.Regex.Match(message, "job ([0-9a-f]{32})").Groups[1].Value;
}
