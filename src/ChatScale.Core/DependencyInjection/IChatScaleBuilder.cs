using Microsoft.Extensions.DependencyInjection;

namespace ChatScale;

/// <summary>
/// Returned by <c>AddChatScale()</c>; each ChatScale package adds extension methods to it (for example
/// <c>AddRedis(...)</c> or <c>AddJobHandler&lt;TJob, THandler&gt;()</c>).
/// </summary>
public interface IChatScaleBuilder
{
    /// <summary>The service collection ChatScale is being added to.</summary>
    IServiceCollection Services { get; }
}
