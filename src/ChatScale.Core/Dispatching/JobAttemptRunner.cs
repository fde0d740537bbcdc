using System.Diagnostics;
using System.Text.Json;
using ChatScale.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Dispatching;

/// <summary>
/// Runs one attempt of one job the same way in every dispatcher: resolves the handler from a new DI scope, traces the
/// attempt as an <see cref="Activity"/> (<c>chatscale.dispatch</c>, kind consumer) linked to the enqueuer's trace, and
/// classifies the end (succeeded, failed, failed permanently, interrupted).
/// </summary>
public sealed class JobAttemptRunner
{
    private readonly IServiceScopeFactory _scopeFactory;
    private readonly TimeProvider _time;

    /// <summary>Creates the runner.</summary>
    /// <param name="scopeFactory">Creates the scope each attempt's handler is resolved from.</param>
    /// <param name="timeProvider">The clock for durations; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    public JobAttemptRunner(IServiceScopeFactory scopeFactory, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(scopeFactory);
        _scopeFactory = scopeFactory;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Runs one attempt of a job that is already an object (in-memory dispatchers).</summary>
    /// <param name="registration">The job's registration.</param>
    /// <param name="job">The job.</param>
    /// <param name="context">The attempt's context.</param>
    /// <param name="enqueuedBy">The trace context of the code that enqueued the job; <see langword="default"/> for none.</param>
    /// <param name="cancellationToken">The handler's token (shutdown, lost lease).</param>
    /// <returns>How the attempt ended; never throws for a handler failure.</returns>
    public ValueTask<JobAttemptResult> RunAsync(
        JobTypeRegistration registration, object job, JobContext context, ActivityContext enqueuedBy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(registration);
        ArgumentNullException.ThrowIfNull(job);
        return RunCoreAsync(registration, job, default, context, enqueuedBy, cancellationToken);
    }

    /// <summary>Runs one attempt of a stored job (durable dispatchers): deserializes it first.</summary>
    /// <param name="registration">The job's registration, or <see langword="null"/> when this node has none (a permanent failure).</param>
    /// <param name="payload">The bytes written by <see cref="JobTypeRegistration.Serialize"/>.</param>
    /// <param name="context">The attempt's context.</param>
    /// <param name="enqueuedBy">The trace context of the code that enqueued the job; <see langword="default"/> for none.</param>
    /// <param name="cancellationToken">The handler's token (shutdown, lost lease).</param>
    /// <returns>How the attempt ended; never throws for a handler failure.</returns>
    public ValueTask<JobAttemptResult> RunAsync(
        JobTypeRegistration? registration, ReadOnlyMemory<byte> payload, JobContext context, ActivityContext enqueuedBy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        return RunCoreAsync(registration, null, payload, context, enqueuedBy, cancellationToken);
    }

    private async ValueTask<JobAttemptResult> RunCoreAsync(
        JobTypeRegistration? registration, object? job, ReadOnlyMemory<byte> payload, JobContext context, ActivityContext enqueuedBy, CancellationToken cancellationToken)
    {
        using var activity = StartActivity(context, enqueuedBy);
        var started = _time.GetTimestamp();
        if (registration is null)
        {
            return Failed(activity, new InvalidOperationException($"No job handler is registered for job type '{context.JobType}' on this node."), true, default);
        }

        if (job is null)
        {
            try
            {
                job = registration.Deserialize(payload);
            }
            catch (Exception ex) when (ex is JsonException or NotSupportedException)
            {
                return Failed(activity, new InvalidOperationException($"The payload of job {context.JobId} is not a valid '{context.JobType}': {ex.Message}", ex), true, default);
            }
        }

        try
        {
            var scope = _scopeFactory.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
            {
                await registration.InvokeAsync(scope.ServiceProvider, job, context, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            activity?.SetStatus(ActivityStatusCode.Error, "Interrupted (shutdown or lost lease).");
            return new JobAttemptResult { Interrupted = true, Duration = _time.GetElapsedTime(started) };
        }
        catch (Exception ex)
        {
            return Failed(activity, ex, false, _time.GetElapsedTime(started));
        }

        activity?.SetStatus(ActivityStatusCode.Ok);
        return new JobAttemptResult { Duration = _time.GetElapsedTime(started) };
    }

    private static JobAttemptResult Failed(Activity? activity, Exception error, bool permanent, TimeSpan duration)
    {
        activity?.SetStatus(ActivityStatusCode.Error, error.Message);
        activity?.AddException(error);
        return new JobAttemptResult { Error = error, Permanent = permanent, Duration = duration };
    }

    private static Activity? StartActivity(JobContext context, ActivityContext enqueuedBy)
    {
        var source = ChatScaleMetrics.ActivitySource;
        if (!source.HasListeners())
        {
            return null;
        }

        // Linked, not parented, to the enqueuer's span: the job runs long after that request has finished.
        var links = enqueuedBy == default ? null : new[] { new ActivityLink(enqueuedBy) };
        var activity = source.StartActivity("chatscale.dispatch", ActivityKind.Consumer, parentContext: default, tags: null, links: links);
        if (activity is not null)
        {
            activity.SetTag("chatscale.job.id", context.JobId);
            activity.SetTag("chatscale.job.type", context.JobType);
            activity.SetTag("chatscale.job.attempt", context.Attempt);
            if (context.OrderingKey is not null)
            {
                activity.SetTag("chatscale.job.ordering_key", context.OrderingKey);
            }

            if (context.FencingToken != 0)
            {
                activity.SetTag("chatscale.job.fencing_token", context.FencingToken);
            }
        }

        return activity;
    }
}
