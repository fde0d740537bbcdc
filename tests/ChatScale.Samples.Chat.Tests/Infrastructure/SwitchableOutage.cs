using ChatScale.InMemory;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>
/// An in-memory node's dispatcher that refuses jobs the way the Redis dispatcher does while Redis is down
/// (<see cref="BackplaneUnavailableException"/>) for as long as <see cref="Down"/> is set.
/// </summary>
public sealed class SwitchableOutage
{
    private volatile bool _down;

    public bool Down
    {
        get => _down;
        set => _down = value;
    }

    /// <summary>How many enqueues were refused.</summary>
    public int Refused => _refused;

    private int _refused;

    /// <summary>For <see cref="ChatNode.StartAsync"/>'s configure: installs this outage's dispatcher.</summary>
    public void Install(WebApplicationBuilder builder)
        => builder.Services.Replace(ServiceDescriptor.Singleton<IBackgroundDispatcher>(sp =>
            new Dispatcher(ActivatorUtilities.CreateInstance<InMemoryBackgroundDispatcher>(sp), this)));

    private sealed class Dispatcher(InMemoryBackgroundDispatcher inner, SwitchableOutage outage) : IBackgroundDispatcher, IHostedService
    {
        public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
            where TJob : notnull
        {
            if (outage.Down)
            {
                Interlocked.Increment(ref outage._refused);
                throw new BackplaneUnavailableException("Redis is unreachable (test).");
            }

            return inner.EnqueueAsync(job, orderingKey, cancellationToken);
        }

        public ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default) => inner.GetDeadLettersAsync(maxCount, cancellationToken);

        public ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default) => inner.ReplayDeadLettersAsync(jobId, cancellationToken);

        public ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default) => inner.PurgeDeadLettersAsync(cancellationToken);

        public ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default) => inner.GetStatisticsAsync(cancellationToken);

        public Task StartAsync(CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);
    }
}
