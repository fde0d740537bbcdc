using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class FixtureTests(RedisFixture redis)
{
    [Fact]
    public async Task SharedServer_AnswersCommands()
    {
        await using var mux = await redis.ConnectAsync();
        var key = RedisFixture.UniquePrefix("fixture") + ":k";
        await mux.GetDatabase().StringSetAsync(key, "v", TimeSpan.FromMinutes(1));
        Assert.Equal("v", (string?)await mux.GetDatabase().StringGetAsync(key));
    }

    [Fact]
    public async Task OwnServer_CanBeStoppedAndStartedOnTheSamePort()
    {
        await using var server = await RedisServer.StartNewAsync();
        var port = server.Port;
        await server.StopAsync();
        await server.StartAsync();
        Assert.Equal(port, server.Port);
        await RedisServer.WaitForPingAsync(server.Port, TimeSpan.FromSeconds(30));
    }
}

[Collection(RedisClusterCollection.Name)]
public sealed class ClusterFixtureTests(RedisClusterFixture cluster)
{
    [Fact]
    public async Task Cluster_HasThreeMastersCoveringAllSlots()
    {
        await using var mux = await cluster.ConnectAsync(allowAdmin: true);
        var masters = mux.GetServers().Where(s => !s.IsReplica).ToArray();
        Assert.Equal(3, masters.Length);
        var info = (string?)await masters[0].ExecuteAsync("CLUSTER", "INFO");
        Assert.Contains("cluster_slots_assigned:16384", info, StringComparison.Ordinal);
    }
}
