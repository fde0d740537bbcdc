using StackExchange.Redis;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>
/// One Redis shared by every test of <see cref="RedisCollection"/>: the server named by <c>CHATSCALE_TEST_REDIS</c>
/// (a StackExchange.Redis connection string) when set, else a <c>redis-server</c> started on a free loopback port,
/// else a Testcontainers Redis. Tests isolate themselves with a unique key prefix (<see cref="UniquePrefix"/>).
/// </summary>
public sealed class RedisFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "CHATSCALE_TEST_REDIS";

    private RedisServer? _server;
    private string _connectionString = string.Empty;

    /// <summary>Connection string of the shared server.</summary>
    public string ConnectionString => _connectionString;

    /// <summary>Whether the server is ours to stop and start (false for an external <c>CHATSCALE_TEST_REDIS</c>).</summary>
    public bool OwnsServer => _server is not null;

    public async Task InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(external))
        {
            _connectionString = external;
            return;
        }

        _server = await RedisServer.StartNewAsync().ConfigureAwait(false);
        _connectionString = _server.ConnectionString;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A fresh multiplexer to the shared server; the test disposes it.</summary>
    public Task<ConnectionMultiplexer> ConnectAsync(bool allowAdmin = false)
    {
        var options = ConfigurationOptions.Parse(_connectionString);
        options.AllowAdmin = allowAdmin;
        options.AbortOnConnectFail = false;
        return ConnectionMultiplexer.ConnectAsync(options);
    }

    /// <summary>A key prefix no other test uses, so tests sharing the server never see each other's keys or channels.</summary>
    public static string UniquePrefix(string? hint = null) => $"t-{hint ?? "x"}-{Guid.NewGuid():N}";
}

/// <summary>Tests that share one standalone Redis server.</summary>
[CollectionDefinition(Name)]
public sealed class RedisCollection : ICollectionFixture<RedisFixture>
{
    public const string Name = "Redis";
}
