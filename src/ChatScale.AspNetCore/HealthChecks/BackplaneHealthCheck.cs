using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.HealthChecks;

/// <summary>
/// Healthy when presence answers a lookup within the timeout. Presence and the broadcaster share the backplane
/// connection (Redis), so this is the backplane's reachability as seen from this node.
/// </summary>
internal sealed class BackplaneHealthCheck : IHealthCheck
{
    private const string ProbeUserId = "chatscale:health-probe";

    private readonly IConnectionRegistry _registry;
    private readonly ChatScaleHealthCheckOptions _options;

    public BackplaneHealthCheck(IConnectionRegistry registry, IOptions<ChatScaleHealthCheckOptions> options)
    {
        _registry = registry;
        _options = options.Value;
    }

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
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
