using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests;

/// <summary>Counts the Redis commands one publish costs, with INFO commandstats before and after.</summary>
[Collection(RedisCollection.Name)]
public sealed class CommandCountTests(RedisFixture redis, ITestOutputHelper output)
{
    [Fact]
    public async Task Targeted_FiftyUsersOverTwoNodes_CostsOneLookupAndTwoPublishes()
    {
        var prefix = RedisFixture.UniquePrefix("count");
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a");
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b");
        var users = Enumerable.Range(0, 50).Select(i => $"user-{i}").ToArray();
        var transports = new List<FakeTransport>();
        foreach (var (user, i) in users.Select((u, i) => (u, i)))
        {
            transports.Add(await (i % 2 == 0 ? a : b).ConnectAsync(user));
        }

        await using var admin = await redis.ConnectAsync(allowAdmin: true);
        var server = admin.GetServers().Single();

        // The first lookup on a connection also loads the script (EVAL + SCRIPT LOAD); measure the steady state after it.
        var warmUp = await CommandStats.SnapshotAsync(server);
        await a.PublishAsync("warm-up", "nobody");
        output.WriteLine($"first lookup on this connection: {CommandStats.Format(CommandStats.Delta(warmUp, await CommandStats.SnapshotAsync(server)))}");

        var before = await CommandStats.SnapshotAsync(server);
        var result = await a.PublishAsync("hello fifty", users);
        var delta = CommandStats.Delta(before, await CommandStats.SnapshotAsync(server));

        output.WriteLine($"targeted, 50 users on 2 nodes: {CommandStats.Format(delta)}");
        Assert.Equal(2, result.TargetedNodes);
        Assert.Empty(result.OfflineUsers);
        Assert.Equal(2, delta.GetValueOrDefault("publish"));
        Assert.Equal(1, delta.GetValueOrDefault("evalsha")); // the one presence lookup round-trip
        Assert.Equal(0, delta.GetValueOrDefault("eval") + delta.GetValueOrDefault("script|load"));
        Assert.Equal(50, delta.GetValueOrDefault("hvals")); // run inside that script, one per user
        await Task.WhenAll(transports.Select(t => t.WaitForAsync(1)));
        Assert.Equal(1, a.ReceivedCount);
        Assert.Equal(1, b.ReceivedCount);
    }

    [Fact]
    public async Task Broadcast_FiftyUsers_CostsOnePublishAndNoLookup()
    {
        var prefix = RedisFixture.UniquePrefix("count-bc");
        Action<ChatScaleRedisOptions> broadcast = o => o.RoutingMode = RedisRoutingMode.Broadcast;
        await using var a = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-a", broadcast);
        await using var b = await TestNode.StartAsync(redis.ConnectionString, prefix, "node-b", broadcast);
        var users = Enumerable.Range(0, 50).Select(i => $"user-{i}").ToArray();
        var last = await b.ConnectAsync(users[^1]);

        await using var admin = await redis.ConnectAsync(allowAdmin: true);
        var server = admin.GetServers().Single();
        var before = await CommandStats.SnapshotAsync(server);

        await a.PublishAsync("hello fifty", users);

        var delta = CommandStats.Delta(before, await CommandStats.SnapshotAsync(server));
        output.WriteLine($"broadcast, 50 users: {CommandStats.Format(delta)}");
        Assert.Equal(1, delta.GetValueOrDefault("publish"));
        Assert.Equal(0, delta.GetValueOrDefault("evalsha") + delta.GetValueOrDefault("eval"));
        await last.WaitForAsync(1);
    }
}
