using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.HealthChecks;

/// <summary>Compares the background dispatcher's backlog with <see cref="ChatScaleHealthCheckOptions"/> thresholds.</summary>
internal sealed class DispatcherBacklogHealthCheck : IHealthCheck
{
    private readonly IServiceProvider _services;
    private readonly ChatScaleHealthCheckOptions _options;

    public DispatcherBacklogHealthCheck(IServiceProvider services, IOptions<ChatScaleHealthCheckOptions> options)
    {
        _services = services;
        _options = options.Value;
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var dispatcher = _services.GetService<IBackgroundDispatcher>();
        if (dispatcher is null)
        {
            return HealthCheckResult.Healthy("No background dispatcher is registered.");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        DispatcherStatistics stats;
        try
        {
            stats = await dispatcher.GetStatisticsAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The dispatcher did not report its backlog within {_options.Timeout}.", ex);
        }

        var data = new Dictionary<string, object>(3, StringComparer.Ordinal)
        {
            ["pending"] = stats.Pending,
            ["in_flight"] = stats.InFlight,
            ["dead_lettered"] = stats.DeadLettered,
        };

        if (stats.Pending >= _options.UnhealthyBacklog)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"{stats.Pending} jobs pending (unhealthy at {_options.UnhealthyBacklog}).", data: data);
        }

        if (stats.Pending >= _options.DegradedBacklog)
        {
            return HealthCheckResult.Degraded($"{stats.Pending} jobs pending (degraded at {_options.DegradedBacklog}).", data: data);
        }

        if (_options.DegradedDeadLettered > 0 && stats.DeadLettered >= _options.DegradedDeadLettered)
        {
            return HealthCheckResult.Degraded($"{stats.DeadLettered} jobs dead-lettered (degraded at {_options.DegradedDeadLettered}).", data: data);
        }

        return HealthCheckResult.Healthy($"{stats.Pending} jobs pending, {stats.InFlight} running.", data);
    }
}
