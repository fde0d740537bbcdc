using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ChatScale.Dispatching;
using ChatScale.InMemory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace ChatScale.Core.Tests.Dispatching;

/// <summary>A job of the tests: a key (null for none) and its position in that key's sequence.</summary>
internal sealed record TestJob(string? Key, int Sequence);

/// <summary>A job type nobody registers a handler for.</summary>
internal sealed record UnregisteredJob(int Value);

/// <summary>Shared (singleton) state the scoped handlers report to; each test sets <see cref="OnHandle"/>.</summary>
internal sealed class JobProbe
{
    public Func<TestJob, JobContext, CancellationToken, ValueTask> OnHandle { get; set; } = (_, _, _) => ValueTask.CompletedTask;

    /// <summary>Every handler instance that ran, one entry per attempt.</summary>
    public ConcurrentQueue<object> HandlerInstances { get; } = new();
}

/// <summary>Scoped: a new instance per attempt, which the scope test relies on.</summary>
internal sealed class TestJobHandler(JobProbe probe) : IJobHandler<TestJob>
{
    public ValueTask HandleAsync(TestJob job, JobContext context, CancellationToken cancellationToken)
    {
        probe.HandlerInstances.Enqueue(this);
        return probe.OnHandle(job, context, cancellationToken);
    }
}

internal sealed class TestChatScaleBuilder(IServiceCollection services) : IChatScaleBuilder
{
    public IServiceCollection Services { get; } = services;
}

/// <summary>A dispatcher over real DI (AddJobHandler, AddMetrics, fake logging).</summary>
internal sealed class DispatcherHarness : IAsyncDisposable
{
    /// <summary>Generous, so a loaded two-core machine does not flake; only reached when a test fails.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    public DispatcherHarness(Action<DispatcherOptions>? configure = null, TimeProvider? timeProvider = null, bool registerHandler = true)
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddFakeLogging();
        services.AddSingleton(Probe);
        if (registerHandler)
        {
            new TestChatScaleBuilder(services).AddJobHandler<TestJob, TestJobHandler>();
        }

        Provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
        var options = new ChatScaleOptions();
        configure?.Invoke(options.Dispatcher);
        Dispatcher = new InMemoryBackgroundDispatcher(
            Microsoft.Extensions.Options.Options.Create(options),
            Provider.GetRequiredService<IServiceScopeFactory>(),
            Provider.GetServices<JobTypeRegistration>(),
            Provider.GetRequiredService<ILoggerFactory>(),
            Provider.GetRequiredService<IMeterFactory>(),
            timeProvider);
    }

    public JobProbe Probe { get; } = new();

    public ServiceProvider Provider { get; }

    public InMemoryBackgroundDispatcher Dispatcher { get; }

    public IMeterFactory MeterFactory => Provider.GetRequiredService<IMeterFactory>();

    public FakeLogCollector Logs => Provider.GetFakeLogCollector();

    public Task StartAsync() => Dispatcher.StartAsync(CancellationToken.None);

    public ValueTask<string> EnqueueAsync(string? key, int sequence) => Dispatcher.EnqueueAsync(new TestJob(key, sequence), key);

    /// <summary>Polls the statistics until <paramref name="condition"/> holds; fails the test after <see cref="Timeout"/>.</summary>
    public async Task<DispatcherStatistics> WaitForStatisticsAsync(Func<DispatcherStatistics, bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            var statistics = await Dispatcher.GetStatisticsAsync();
            if (condition(statistics))
            {
                return statistics;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The dispatcher did not reach the expected state; last statistics: {statistics}.");
            }

            await Task.Delay(5);
        }
    }

    /// <summary>Waits until nothing is pending or running.</summary>
    public Task<DispatcherStatistics> WaitForIdleAsync() => WaitForStatisticsAsync(s => s is { Pending: 0, InFlight: 0 });

    /// <summary>Polls <paramref name="condition"/> until it holds; fails the test after <see cref="Timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, Action? betweenPolls = null)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("The expected condition was not reached.");
            }

            betweenPolls?.Invoke();
            await Task.Delay(5);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Dispatcher.DisposeAsync();
        await Provider.DisposeAsync();
    }
}
