using System.Diagnostics;
using System.Text;
using ChatScale.Reliability.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>Connections churning while messages flow must leave nothing behind.</summary>
/// <remarks>
/// Figures: 10,000 WebSocket connects/disconnects over two Redis nodes, 32 at a time, 400 distinct users (so a user
/// often has several connections at once); exits rotate through a polite close, a close right after receiving a
/// frame, an abort (TCP reset) and an abort without ever reading. A publisher publishes back to back with 5 ms pauses
/// throughout (850-940 publishes in 8-21 s on the CI box), every tenth to everyone, the rest to 50 random users.
/// </remarks>
[Collection(SharedRedis.Name)]
public sealed class ChurnTests(RedisFixture redis, ITestOutputHelper output)
{
    private const int Connections = 10_000;
    private const int Concurrency = 32;
    private const int Users = 400;

    [Fact]
    public async Task Ten_thousand_connects_and_disconnects_while_messages_flow_leave_no_presence_no_connections_and_no_unobserved_exceptions()
    {
        var unobserved = new List<Exception>();
        void OnUnobserved(object? sender, UnobservedTaskExceptionEventArgs e)
        {
            lock (unobserved)
            {
                unobserved.Add(e.Exception);
            }
        }

        TaskScheduler.UnobservedTaskException += OnUnobserved;
        try
        {
            var prefix = RedisFixture.UniquePrefix("churn");
            await using var node1 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => o.NodeId = "churn-n1");
            await using var node2 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => o.NodeId = "churn-n2");
            ChatHost[] nodes = [node1, node2];

            using var stopPublishing = new CancellationTokenSource();
            var publisher = PublishAsync(nodes, stopPublishing.Token);

            var clock = Stopwatch.StartNew();
            var next = -1;
            var received = 0;
            var failures = 0;
            await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(_ => Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < Connections)
                {
                    try
                    {
                        if (await ChurnOnceAsync(nodes[i % 2], $"user-{i % Users}", i % 4))
                        {
                            Interlocked.Increment(ref received);
                        }
                    }
                    catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            })));
            var churnTime = clock.Elapsed;

            await stopPublishing.CancelAsync();
            var published = await publisher;

            // No leaked connections on either node, and no leaked presence in Redis.
            await Eventually.TrueAsync(() => node1.Connections.Count == 0 && node2.Connections.Count == 0, "both nodes' LocalConnections back to 0");
            await using var mux = await redis.ConnectAsync();
            var server = mux.GetServers()[0];
            var db = mux.GetDatabase();
            var leftovers = new List<string>();
            await Eventually.TrueAsync(async () =>
            {
                leftovers.Clear();
                await foreach (var key in server.KeysAsync(pattern: $"{{{prefix}:pr:*"))
                {
                    if (!key.ToString().EndsWith(":heartbeats", StringComparison.Ordinal))
                    {
                        leftovers.Add($"{key} ({await db.HashLengthAsync(key)} fields)");
                    }
                }

                return leftovers.Count == 0;
            }, "no presence entries left in Redis");
            var lookup = await node1.Registry.LocateAsync([.. Enumerable.Range(0, Users).Select(u => $"user-{u}")]);
            Assert.Equal(Users, lookup.OfflineUsers.Count);

            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            output.WriteLine($"{Connections} connections ({Concurrency} at a time, {Users} users) churned in {churnTime.TotalSeconds:F1} s; {received} received a frame before leaving; {failures} client-side failures; {published} publishes meanwhile");
            lock (unobserved)
            {
                Assert.Empty(unobserved);
            }

            Assert.Equal(0, failures);
            Assert.True(received > 0);
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= OnUnobserved;
        }
    }

    /// <summary>One connection's life; returns whether it received a frame.</summary>
    private static async Task<bool> ChurnOnceAsync(ChatHost node, string user, int exit)
    {
        var socket = await node.ConnectAsync(user);
        try
        {
            switch (exit)
            {
                case 0:
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(Ws.Timeout);
                    return false;
                case 1:
                    // Every tenth publish goes to everyone, so a frame comes soon.
                    await socket.ReceiveTextAsync();
                    await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(Ws.Timeout);
                    return true;
                case 2:
                    await socket.ReceiveTextAsync();
                    socket.Abort();
                    return true;
                default:
                    socket.Abort();
                    return false;
            }
        }
        finally
        {
            socket.Dispose();
        }
    }

    private static async Task<long> PublishAsync(ChatHost[] nodes, CancellationToken stop)
    {
        var random = new Random(42);
        long count = 0;
        while (!stop.IsCancellationRequested)
        {
            var node = nodes[count % 2];
            var users = Enumerable.Range(0, 50).Select(_ => $"user-{random.Next(Users)}").Distinct().ToArray();
            var payload = Encoding.UTF8.GetBytes($"{{\"n\":{count}}}");
            if (count % 10 == 0)
            {
                await node.Broadcaster.PublishToAllAsync(payload, CancellationToken.None);
            }
            else
            {
                await node.Broadcaster.PublishAsync(users, payload, CancellationToken.None);
            }

            count++;
            try
            {
                await Task.Delay(5, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return count;
    }
}
