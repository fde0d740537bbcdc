namespace ChatScale.AspNetCore;

/// <summary>Thresholds of the health checks added by <c>AddHealthChecks()</c> on the ChatScale builder.</summary>
public sealed class ChatScaleHealthCheckOptions
{
    /// <summary>The longest a probe of the backplane or the dispatcher may take before the check fails. Default 5 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Pending jobs at or above which the dispatcher check reports Degraded. Default 1,000.</summary>
    public long DegradedBacklog { get; set; } = 1_000;

    /// <summary>Pending jobs at or above which the dispatcher check reports Unhealthy. Default 10,000.</summary>
    public long UnhealthyBacklog { get; set; } = 10_000;

    /// <summary>Dead-lettered jobs at or above which the dispatcher check reports Degraded. Default 1; 0 disables.</summary>
    public long DegradedDeadLettered { get; set; } = 1;
}
