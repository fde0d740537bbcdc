using System.Diagnostics;
using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using ChatScale.Redis;
using ChatScale.Testing;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>
/// End-to-end throughput of <see cref="RedisStreamDispatcher"/>: each invocation enqueues <see cref="JobsPerRound"/>
/// jobs over <see cref="Keys"/> distinct ordering keys (alternately on two dispatcher instances, 32 concurrent
/// enqueuers) and waits until both instances have handled all of them. Mean is the time per job, so jobs/s = 1 / Mean.
/// Enqueue latency percentiles (p50, p99: from the call to Redis's XADD acknowledgement) are printed at cleanup.
/// </summary>
/// <remarks>
/// Redis: <c>CHATSCALE_BENCH_REDIS</c> (a connection string) when set, else a <c>redis-server</c> from PATH on a free
/// loopback port, without persistence. One key means one partition: its jobs run strictly one after another.
/// </remarks>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5)]
public class RedisDispatcherBenchmarks
{
    private const int JobsPerRound = 20_000;
    private const int Enqueuers = 32;

    private readonly List<long> _enqueueTicks = [];
    private RedisServer? _server;
    private ConnectionMultiplexer[] _multiplexers = [];
    private ServiceProvider[] _providers = [];
    private RedisStreamDispatcher[] _dispatchers = [];
    private string[] _keys = [];
    private Counter _counter = null!;

    [Params(1, 64, 10_000)]
    public int Keys { get; set; }

    [GlobalSetup]
    public async Task SetupAsync()
    {
        var connection = Environment.GetEnvironmentVariable("CHATSCALE_BENCH_REDIS");
        if (connection is null)
        {
            _server = await RedisServer.StartNewAsync();
            connection = _server.ConnectionString;
        }

        var prefix = "bench-" + Guid.NewGuid().ToString("N");
        _counter = new Counter();
        _keys = Enumerable.Range(0, Keys).Select(k => "conversation-" + k.ToString(CultureInfo.InvariantCulture)).ToArray();
        _multiplexers = new ConnectionMultiplexer[2];
        _providers = new ServiceProvider[2];
        _dispatchers = new RedisStreamDispatcher[2];
        for (var i = 0; i < 2; i++)
        {
            _multiplexers[i] = await ConnectionMultiplexer.ConnectAsync(connection);
            var services = new ServiceCollection();
            services.AddOptions<ChatScaleOptions>().Configure(o => o.NodeId = "bench-" + i.ToString(CultureInfo.InvariantCulture));
            services.AddSingleton<IConnectionMultiplexer>(_multiplexers[i]);
            services.AddSingleton(_counter);
            var builder = new Builder(services);
            builder.AddRedis(o => o.KeyPrefix = prefix);
            builder.AddJobHandler<BenchJob, CountingHandler>();
            _providers[i] = services.BuildServiceProvider();
            _dispatchers[i] = _providers[i].GetRequiredService<RedisStreamDispatcher>();
            await _dispatchers[i].StartAsync(CancellationToken.None);
        }

        // Let the two instances split the partitions before measuring.
        var clock = Stopwatch.StartNew();
        while ((_dispatchers[0].OwnedPartitionCount == 0 || _dispatchers[1].OwnedPartitionCount == 0) && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(50);
        }
    }

    [Benchmark(OperationsPerInvoke = JobsPerRound)]
    public async Task EnqueueAndHandle()
    {
        var done = _counter.Expect(JobsPerRound);
        var next = -1;
        var latencies = new long[JobsPerRound];
        await Task.WhenAll(Enumerable.Range(0, Enqueuers).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < JobsPerRound)
            {
                var started = Stopwatch.GetTimestamp();
                await _dispatchers[i & 1].EnqueueAsync(new BenchJob(i), _keys[i % _keys.Length]);
                latencies[i] = Stopwatch.GetTimestamp() - started;
            }
        })));
        await done;
        lock (_enqueueTicks)
        {
            _enqueueTicks.AddRange(latencies);
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        if (_enqueueTicks.Count > 0)
        {
            _enqueueTicks.Sort();
            static string Ms(long ticks) => (ticks * 1000.0 / Stopwatch.Frequency).ToString("F3", CultureInfo.InvariantCulture);
            Console.WriteLine(
                $"// Keys={Keys}: enqueue latency over {_enqueueTicks.Count} calls: p50 {Ms(_enqueueTicks[_enqueueTicks.Count / 2])} ms, "
                + $"p99 {Ms(_enqueueTicks[(int)(_enqueueTicks.Count * 0.99)])} ms, max {Ms(_enqueueTicks[^1])} ms");
        }

        foreach (var dispatcher in _dispatchers)
        {
            await dispatcher.StopAsync(CancellationToken.None);
        }

        foreach (var provider in _providers)
        {
            await provider.DisposeAsync();
        }

        foreach (var multiplexer in _multiplexers)
        {
            await multiplexer.DisposeAsync();
        }

        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    public sealed record BenchJob(int Seq);

    public sealed class Counter
    {
        private int _remaining;
        private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Expect(int count)
        {
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _remaining, count);
            return _done.Task;
        }

        public void Handled()
        {
            if (Interlocked.Decrement(ref _remaining) == 0)
            {
                _done.TrySetResult();
            }
        }
    }

    public sealed class CountingHandler(Counter counter) : IJobHandler<BenchJob>
    {
        public ValueTask HandleAsync(BenchJob job, JobContext context, CancellationToken cancellationToken)
        {
            counter.Handled();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class Builder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }
}
