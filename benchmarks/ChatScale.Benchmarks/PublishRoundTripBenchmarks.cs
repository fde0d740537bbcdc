using BenchmarkDotNet.Attributes;
using ChatScale.Connections;
using ChatScale.InMemory;
using ChatScale.Redis;
using ChatScale.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>
/// Publish round-trip through a real redis-server: <see cref="IMessageBroadcaster.PublishAsync"/> on node A (presence
/// lookup + PUBLISH) until node B's listener has handed the frame to all N recipients' transports in its
/// <see cref="LocalConnections"/>. Two nodes in one process, each with its own Redis connection, wired as
/// <c>AddChatScale().AddRedis()</c> wires them.
/// </summary>
[MemoryDiagnoser]
public class PublishRoundTripBenchmarks
{
    private RedisServer _redis = null!;
    private BenchNode _a = null!;
    private BenchNode _b = null!;
    private string[] _users = null!;
    private CountdownTransport _transport = null!;
    private readonly byte[] _payload = new byte[256];

    [Params(1, 50)]
    public int Recipients { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _a = await BenchNode.StartAsync(_redis.ConnectionString, "node-a", "bench");
        _b = await BenchNode.StartAsync(_redis.ConnectionString, "node-b", "bench");
        _transport = new CountdownTransport();
        _users = new string[Recipients];
        for (var i = 0; i < Recipients; i++)
        {
            _users[i] = $"user-{i:D6}";
            var connection = _b.Connections.Add(_users[i], _transport);
            await _b.Registry.RegisterAsync(new ConnectionRegistration(connection.ConnectionId, _users[i], "node-b"));
        }

        await _b.Registry.HeartbeatAsync("node-b");
        await RoundTrip();
    }

    [Benchmark]
    public async Task RoundTrip()
    {
        var delivered = _transport.Expect(Recipients);
        await _a.Broadcaster.PublishAsync(_users, _payload);
        await delivered;
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _redis.DisposeAsync();
    }
}
