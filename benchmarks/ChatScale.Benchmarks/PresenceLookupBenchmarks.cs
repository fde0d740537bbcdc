using BenchmarkDotNet.Attributes;
using ChatScale.Redis;
using ChatScale.Testing;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>
/// Presence lookup against a real redis-server on loopback: <see cref="RedisConnectionRegistry.LocateAsync"/> of N
/// online users spread over two live nodes (one Lua script, one round-trip), as targeted routing does per message.
/// </summary>
[MemoryDiagnoser]
public class PresenceLookupBenchmarks
{
    private RedisServer _redis = null!;
    private ConnectionMultiplexer _multiplexer = null!;
    private RedisConnectionRegistry _registry = null!;
    private string[] _users = null!;

    [Params(50)]
    public int Users { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _multiplexer = await ConnectionMultiplexer.ConnectAsync(_redis.ConnectionString);
        _registry = new RedisConnectionRegistry(
            _multiplexer,
            Options.Create(new ChatScaleOptions { NodeId = "node-a" }),
            Options.Create(new ChatScaleRedisOptions { KeyPrefix = "bench" }));
        _users = new string[Users];
        for (var i = 0; i < Users; i++)
        {
            _users[i] = $"user-{i:D6}";
            var node = i % 2 == 0 ? "node-a" : "node-b";
            await _registry.RegisterAsync(new ConnectionRegistration($"c{i}", _users[i], node));
        }

        await _registry.HeartbeatAsync("node-a");
        await _registry.HeartbeatAsync("node-b");
        var lookup = await _registry.LocateAsync(_users);
        if (lookup.UsersByNode.Count != 2 || lookup.OfflineUsers.Count != 0)
        {
            throw new InvalidOperationException("setup: expected every user online on two nodes");
        }
    }

    [Benchmark]
    public async Task<int> Locate()
    {
        var lookup = await _registry.LocateAsync(_users);
        return lookup.UsersByNode.Count;
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _registry.Dispose();
        await _multiplexer.DisposeAsync();
        await _redis.DisposeAsync();
    }
}
