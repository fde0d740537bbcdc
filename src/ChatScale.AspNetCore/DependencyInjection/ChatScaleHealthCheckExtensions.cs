using ChatScale;
using ChatScale.AspNetCore;
using ChatScale.AspNetCore.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds ChatScale's health checks.</summary>
public static class ChatScaleHealthCheckExtensions
{
    /// <summary>The name of the check that presence (and so the backplane) answers.</summary>
    public const string BackplaneCheckName = "chatscale-backplane";

    /// <summary>The name of the check of the background dispatcher's backlog.</summary>
    public const string DispatcherCheckName = "chatscale-dispatcher";

    /// <summary>
    /// Registers two <see cref="IHealthCheck"/>s with ASP.NET Core health checks, tagged <c>chatscale</c>:
    /// <c>chatscale-backplane</c> (presence, and so the backplane, answers within the timeout) and
    /// <c>chatscale-dispatcher</c> (the background dispatcher's backlog is under the thresholds). Expose them with
    /// <c>app.MapHealthChecks("/healthz")</c>. Calling this twice only applies <paramref name="configure"/> again.
    /// </summary>
    /// <param name="builder">The ChatScale builder.</param>
    /// <param name="configure">Adjusts the timeout and thresholds.</param>
    /// <returns>The builder.</returns>
    public static IChatScaleBuilder AddHealthChecks(this IChatScaleBuilder builder, Action<ChatScaleHealthCheckOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<ChatScaleHealthCheckOptions>();
        if (configure is not null)
        {
            services.Configure(configure);
        }

        if (!services.Any(d => d.ServiceType == typeof(HealthChecksMarker)))
        {
            services.AddSingleton<HealthChecksMarker>();
            services.AddHealthChecks()
                .AddCheck<BackplaneHealthCheck>(BackplaneCheckName, HealthStatus.Unhealthy, ["chatscale"])
                .AddCheck<DispatcherBacklogHealthCheck>(DispatcherCheckName, HealthStatus.Unhealthy, ["chatscale"]);
        }

        return builder;
    }

    private sealed class HealthChecksMarker;
}
