using Microsoft.Extensions.DependencyInjection;
using System.Collections.Concurrent;
using ChatScale.Redis.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests;

/// <summary>
/// Stops and starts the test's own redis-server process (never the shared one) under two live nodes.
/// </summary>
public sealed class RestartTests(ITestOutputHelper output)
{
    [Fact]
    public async Task RedisRestart_ListenerResubscribes_LaterMessagesArrive_AndNoExceptionGoesUnobserved()
    {
        var unobserved = new ConcurrentQueue<Exception>();
        EventHandler<UnobservedTaskExceptionEventArgs> onUnobserved = (_, e) => unobserved.Enqueue(e.Exception);
        TaskScheduler.UnobservedTaskException += onUnobserved;
        try
        {
            await using (var server = await RedisServer.StartNewAsync())
            {
                await RunAsync(server);
            }

            // Anything abandoned and faulted is collectable by now; its finalizer would raise the event.
            for (var i = 0; i < 3; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }

            Assert.Empty(unobserved);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= onUnobserved;
        }
    }

    private async Task RunAsync(RedisServer server)
    {
        var prefix = RedisFixture.UniquePrefix("restart");
        await using var a = await TestNode.StartAsync(server.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(server.ConnectionString, prefix, "node-b");
        var bob = await b.ConnectAsync("bob");
        await a.PublishAsync("before", "bob");
        await bob.WaitForAsync(1);

        await server.StopAsync();
        await Eventually.TrueAsync(() => !a.Multiplexer.IsConnected && !b.Multiplexer.IsConnected, "both nodes to notice Redis is gone");

        // Fails fast and clearly while Redis is down: a retryable BackplaneUnavailableException, not a hang.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<BackplaneUnavailableException>(() => a.PublishAsync("during", "bob").AsTask());
        output.WriteLine($"while down ({clock.ElapsedMilliseconds} ms): {failure.Message} <- {failure.InnerException?.GetType().Name}");
        await Assert.ThrowsAsync<BackplaneUnavailableException>(() => a.Broadcaster.PublishToAllAsync("during"u8.ToArray()).AsTask());

        await server.StartAsync();
        await Eventually.TrueAsync(() => a.Multiplexer.IsConnected && b.Multiplexer.IsConnected, "both nodes to reconnect");

        // The restarted server has no data (no persistence): the node's next heartbeat sees that Redis holds fewer of
        // its connections than it registered, and restores them.
        await Eventually.TrueAsync(async () =>
        {
            try
            {
                await b.Registry.HeartbeatAsync(b.NodeId);
                return true;
            }
            catch (BackplaneUnavailableException)
            {
                return false;
            }
        }, "node B to re-register its connections");

        // Once B's subscription is back, the listener proves it (a probe on its own channel), and closes bob's
        // connection with 1012: frames published meanwhile were lost, so the client must reconnect and catch up.
        var readiness = b.Services.GetRequiredService<BackplaneReadiness>();
        await Eventually.TrueAsync(() => readiness.IsReceiving && bob.ClosedWith is not null, "node B to resubscribe and close bob with 1012");
        Assert.Equal(ChatScale.Connections.ConnectionCloseStatus.ServiceRestart, bob.ClosedWith);
        Assert.Equal(["before"], bob.Frames);
        bob = await b.ConnectAsync("bob");

        // From then on, every message arrives, in order, on both channels.
        var baseline = bob.Count;
        for (var i = 0; i < 20; i++)
        {
            await a.PublishAsync($"after-{i}", "bob");
        }

        await a.Broadcaster.PublishToAllAsync("after-all"u8.ToArray());
        await bob.WaitForAsync(baseline + 21);
        var after = bob.Frames.Skip(baseline).ToArray();
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"after-{i}"), after.Where(f => f != "after-all")); // node channel: in order
        Assert.Contains("after-all", after); // all-nodes channel: resubscribed too
        Assert.Equal(0, b.MalformedCount);

        // StackExchange.Redis re-established the subscriptions on the same queues; the listener's own
        // resubscribe-on-completion path (event 2005) was not needed.
        output.WriteLine($"queue completions seen by B's listener: {b.LogCount(2005)}");
        Assert.Equal(0, b.LogCount(2005));
    }
}
