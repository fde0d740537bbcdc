using System.Diagnostics;
using ChatScale.Reliability.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>A node dies without shutdown: no graceful close, no unregister, no presence removal.</summary>
[Collection(SharedRedis.Name)]
public sealed class NodeCrashTests(RedisFixture redis, ITestOutputHelper output)
{
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PresenceTimeout = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Node_killed_without_shutdown_its_users_go_offline_within_the_presence_timeout_and_the_other_node_keeps_delivering()
    {
        var prefix = RedisFixture.UniquePrefix("crash");
        await using var admin = await redis.ConnectAsync(allowAdmin: true);
        var db = admin.GetDatabase();

        // Node 1 talks to Redis as its own ACL user, so the test can cut it off exactly like a dead process: its
        // connections are killed and it can never log in again, so it cannot unregister anything on the way down.
        var aclUser = "node1-" + Guid.NewGuid().ToString("N")[..8];
        await db.ExecuteAsync("ACL", "SETUSER", aclUser, "on", ">s3cret", "~*", "&*", "+@all");
        try
        {
            void Tune(ChatScaleOptions o)
            {
                o.HeartbeatInterval = Heartbeat;
                o.PresenceTimeout = PresenceTimeout;
            }

            var node1 = await ChatHost.StartAsync($"{redis.ConnectionString},user={aclUser},password=s3cret", prefix, o => { Tune(o); o.NodeId = "crash-n1"; });
            await using var node2 = await ChatHost.StartAsync(redis.ConnectionString, prefix, o => { Tune(o); o.NodeId = "crash-n2"; });

            var alice = await node1.ConnectAsync("alice");
            var bob = await node2.ConnectAsync("bob");
            var carol = await node2.ConnectAsync("carol");
            await Eventually.TrueAsync(async () => (await node2.Registry.LocateAsync(["alice"])).UsersByNode.ContainsKey("crash-n1"), "alice online on node 1");

            await db.ExecuteAsync("ACL", "SETUSER", aclUser, "off");
            await db.ExecuteAsync("CLIENT", "KILL", "USER", aclUser);
            var crashedAt = Stopwatch.StartNew();
            await node1.CrashAsync();
            alice.Abort();
            alice.Dispose();

            // Alice counts as offline once node 1's heartbeat is older than the presence timeout.
            await Eventually.TrueAsync(
                async () => (await node2.Registry.LocateAsync(["alice"])).OfflineUsers.Contains("alice"),
                "alice offline",
                PresenceTimeout + Heartbeat + TimeSpan.FromSeconds(10));
            var offlineAfter = crashedAt.Elapsed;
            output.WriteLine($"alice offline {offlineAfter.TotalSeconds:F2} s after the crash (heartbeat {Heartbeat.TotalSeconds} s, presence timeout {PresenceTimeout.TotalSeconds} s)");
            Assert.Equal(0, await node2.Registry.GetConnectionCountAsync("alice"));

            // Node 2 is unaffected: it still delivers to its own users, and reports alice as offline to publishers.
            for (var i = 0; i < 20; i++)
            {
                var result = await node2.Broadcaster.PublishAsync(["bob", "carol", "alice"], System.Text.Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"));
                Assert.Equal(["alice"], result.OfflineUsers);
                Assert.Equal($"{{\"n\":{i}}}", await bob.ReceiveTextAsync());
                Assert.Equal($"{{\"n\":{i}}}", await carol.ReceiveTextAsync());
            }

            var probe = await node2.ConnectAsync("dave");
            await Eventually.TrueAsync(async () => (await node2.Registry.LocateAsync(["dave"])).UsersByNode.ContainsKey("crash-n2"), "a new connection on node 2 registered");
            await probe.CloseQuietlyAsync();
            await bob.CloseQuietlyAsync();
            await carol.CloseQuietlyAsync();
        }
        finally
        {
            await db.ExecuteAsync("ACL", "DELUSER", aclUser);
        }
    }
}
