using ChatScale.Dispatching;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>What every part of one <see cref="RedisStreamDispatcher"/> shares: connection, keys, options, clocks and tokens.</summary>
internal sealed class DispatcherRuntime : IDisposable
{
    public required IConnectionMultiplexer Multiplexer { get; init; }

    public required RedisKeyspace Keys { get; init; }

    public required JobTypeRegistry Registry { get; init; }

    public required JobAttemptRunner Runner { get; init; }

    public required RetryPolicy Retry { get; init; }

    public required ILogger Logger { get; init; }

    public required RedisDispatcherMetrics Metrics { get; init; }

    public required TimeProvider Time { get; init; }

    public required string InstanceId { get; init; }

    public required string NodeId { get; init; }

    public required int Partitions { get; init; }

    public required int WorkerCount { get; init; }

    public required TimeSpan LeaseTtl { get; init; }

    public required TimeSpan PollInterval { get; init; }

    public required int ReadBatchSize { get; init; }

    /// <summary>Caps how many entries one partition holds in memory (read, not yet finished).</summary>
    public required int MaxBufferedPerPartition { get; init; }

    /// <summary>Limits how many handlers run at once on this instance, keyed and unkeyed together.</summary>
    public required SemaphoreSlim Slots { get; init; }

    /// <summary>Stop taking and starting jobs (graceful stop; handlers already running go on).</summary>
    public CancellationTokenSource Stopping { get; } = new();

    /// <summary>Cancel running handlers (the host's shutdown deadline passed, or disposal).</summary>
    public CancellationTokenSource Aborting { get; } = new();

    /// <summary>Set by <see cref="RedisStreamDispatcher.AbandonAsync"/> to simulate a crash: nothing is released.</summary>
    public volatile bool Abandoned;

    private long _inFlight;

    public IDatabase Database => Multiplexer.GetDatabase();

    public long InFlight => Interlocked.Read(ref _inFlight);

    public void AttemptStarted() => Interlocked.Increment(ref _inFlight);

    public void AttemptEnded() => Interlocked.Decrement(ref _inFlight);

    /// <summary>
    /// Unreachable, or up but not serving yet: right after a restart Redis answers <c>LOADING</c> while it replays its
    /// persistence file, which is as transient as a refused connection.
    /// </summary>
    public static bool IsUnavailable(Exception exception)
        => RedisFailures.IsUnavailable(exception)
            || (exception is RedisServerException server && server.Message.StartsWith("LOADING", StringComparison.Ordinal));

    /// <summary>For best-effort cleanup: Redis unreachable or the shared connection already disposed.</summary>
    public static bool IsGone(Exception exception) => IsUnavailable(exception) || exception is ObjectDisposedException;

    public void Dispose()
    {
        Slots.Dispose();
    }
}
