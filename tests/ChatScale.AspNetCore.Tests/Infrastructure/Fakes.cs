using System.Collections.Concurrent;
using System.Text;
using ChatScale.InMemory;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>An in-memory registry that records the calls a host makes, in order.</summary>
internal sealed class SpyRegistry(IOptions<ChatScaleOptions> options) : IConnectionRegistry
{
    private readonly InMemoryConnectionRegistry _inner = new(options);

    public ConcurrentQueue<string> Calls { get; } = new();

    public bool FailLookups { get; set; }

    public bool FailRegistrations { get; set; }

    public int Heartbeats => Calls.Count(c => c.StartsWith("heartbeat", StringComparison.Ordinal));

    /// <summary>Awaited before each registration (to hold a connection between joining and its upgrade).</summary>
    public Func<Task>? BeforeRegister { get; set; }

    public async ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue("register " + connection.UserId);
        if (BeforeRegister is { } before)
        {
            await before();
        }

        if (FailRegistrations)
        {
            throw new BackplaneUnavailableException("Redis is down (test).");
        }

        await _inner.RegisterAsync(connection, cancellationToken);
    }

    public ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue("unregister " + connection.UserId);
        return _inner.UnregisterAsync(connection, cancellationToken);
    }

    public ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default)
        => _inner.LocateAsync(userIds, cancellationToken);

    public ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default)
        => FailLookups ? throw new BackplaneUnavailableException("Redis is down (test).") : _inner.GetConnectionCountAsync(userId, cancellationToken);

    public ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue("heartbeat " + nodeId);
        return _inner.HeartbeatAsync(nodeId, cancellationToken);
    }

    public ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue("remove " + nodeId);
        return _inner.RemoveNodeAsync(nodeId, cancellationToken);
    }
}

/// <summary>A dispatcher whose backlog the test sets, and which records whether the host ran it.</summary>
internal sealed class FakeDispatcher : IBackgroundDispatcher, IHostedService
{
    public DispatcherStatistics Statistics { get; set; }

    public int Starts { get; private set; }

    public int Stops { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Starts++;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Stops++;
        return Task.CompletedTask;
    }

    public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
        where TJob : notnull => throw new NotSupportedException();

    public ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default)
        => ValueTask.FromResult<IReadOnlyList<DeadLetteredJob>>([]);

    public ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default) => ValueTask.FromResult(0);

    public ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(0);

    public ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(Statistics);
}

/// <summary>Records what the endpoint hands it, and echoes each message back to the sending connection.</summary>
internal sealed class EchoHandler : IClientMessageHandler
{
    public ConcurrentQueue<string> Events { get; } = new();

    public ValueTask OnConnectedAsync(ChatScaleConnectionContext connection, CancellationToken cancellationToken)
    {
        Events.Enqueue($"connected {connection.UserId}");
        return ValueTask.CompletedTask;
    }

    public ValueTask OnMessageAsync(ChatScaleConnectionContext connection, ReadOnlyMemory<byte> utf8Json, CancellationToken cancellationToken)
    {
        var text = Encoding.UTF8.GetString(utf8Json.Span);
        Events.Enqueue($"message {connection.UserId} {text}");
        if (text.Contains("\"boom\"", StringComparison.Ordinal))
        {
            throw new InvalidOperationException("Handler failure (test).");
        }

        connection.TrySend(Encoding.UTF8.GetBytes($"{{\"echo\":{text}}}"));
        return ValueTask.CompletedTask;
    }

    public ValueTask OnDisconnectedAsync(ChatScaleConnectionContext connection, CancellationToken cancellationToken)
    {
        Events.Enqueue($"disconnected {connection.UserId}");
        return ValueTask.CompletedTask;
    }
}
