using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>A job carrying a conversation and a sequence number.</summary>
public sealed record Numbered(string Conversation, int Seq);

/// <summary>What a test's handler does, registered per host so each host's handler can behave differently.</summary>
public sealed class JobBehavior<TJob>(Func<TJob, JobContext, CancellationToken, ValueTask> run)
{
    public Func<TJob, JobContext, CancellationToken, ValueTask> Run { get; set; } = run;
}

/// <summary>The handler every test registers: it runs the host's <see cref="JobBehavior{TJob}"/>.</summary>
public sealed class BehaviorHandler<TJob>(JobBehavior<TJob> behavior) : IJobHandler<TJob>
{
    public ValueTask HandleAsync(TJob job, JobContext context, CancellationToken cancellationToken)
        => behavior.Run(job, context, cancellationToken);
}

internal static class TestJobRegistration
{
    /// <summary>Registers <typeparamref name="TJob"/> with a handler that runs <paramref name="behavior"/>.</summary>
    public static IChatScaleBuilder AddBehavior<TJob>(this IChatScaleBuilder builder, JobBehavior<TJob> behavior)
        where TJob : notnull
    {
        builder.Services.AddSingleton(behavior);
        return builder.AddJobHandler<TJob, BehaviorHandler<TJob>>();
    }
}
