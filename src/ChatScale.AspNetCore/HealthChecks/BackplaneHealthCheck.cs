using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.HealthChecks;

/// <summary>
/// Healthy when this node receives from the backplane (<see cref="BackplaneReadiness"/>: its listener is subscribed)
/// and presence answers a lookup within the timeout. A node that cannot receive is Unhealthy even though Redis answers:
/// messages routed to it would be lost, so a load balancer should stop sending it clients.
/// </summary>
internal sealed class BackplaneHealthCheck : IHealthCheck
{
    private const string ProbeUserId = "chatscale:health-probe";

    private readonly IConnectionRegistry _registry;
    private readonly BackplaneReadiness? _readiness;
    private readonly ChatScaleHealthCheckOptions _options;

    public BackplaneHealthCheck(IConnectionRegistry registry, IOptions<ChatScaleHealthCheckOptions> options, BackplaneReadiness? readiness = null)
    {
        _registry = registry;
        _readiness = readiness;
        _options = options.Value;
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (_readiness is { IsReceiving: false } readiness)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"This node is not receiving from the backplane since {readiness.Since:O}: {readiness.Reason}.");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.Timeout);
        try
        {
            await _registry.GetConnectionCountAsync(ProbeUserId, timeout.Token).ConfigureAwait(false);
            return HealthCheckResult.Healthy($"Presence ({_registry.GetType().Name}) answered.");
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"Presence ({_registry.GetType().Name}) did not answer within {_options.Timeout}.", ex);
        }
    }
}
