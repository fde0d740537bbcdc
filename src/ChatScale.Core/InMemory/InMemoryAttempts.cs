using ChatScale.Diagnostics;
using ChatScale.Dispatching;
using Microsoft.Extensions.Logging;

namespace ChatScale.InMemory;

/// <summary>How one attempt of an in-memory job ended: done (succeeded, dead-lettered, interrupted) or retry after a delay.</summary>
internal readonly record struct AttemptOutcome(bool Retry, TimeSpan Delay)
{
    public static AttemptOutcome Done => default;

    public static AttemptOutcome RetryAfter(TimeSpan delay) => new(true, delay);
}

/// <summary>
/// Runs one attempt of a job held by <see cref="InMemoryBackgroundDispatcher"/>: waits for one of the node's worker
/// slots, runs the handler through the shared <see cref="JobAttemptRunner"/>, counts the job in the backlog, and
/// decides with the shared <see cref="RetryPolicy"/> whether it is retried or dead-lettered.
/// </summary>
internal sealed class InMemoryAttempts(
    JobAttemptRunner runner,
    RetryPolicy retry,
    InMemoryBacklog backlog,
    ChatScaleMetrics metrics,
    ILogger logger,
    TimeProvider time,
    SemaphoreSlim workerSlots,
    CancellationToken aborting)
{
    public async ValueTask<AttemptOutcome> RunAsync(QueuedJob job, CancellationToken stopping)
    {
        await workerSlots.WaitAsync(stopping).ConfigureAwait(false);
        try
        {
            backlog.Started();
            var attempt = ++job.Attempts;
            var registration = job.Registration;
            var context = new JobContext(job.Id, registration.Name, job.OrderingKey, attempt, job.EnqueuedAt);
            var result = await runner.RunAsync(registration, job.Job, context, job.EnqueuedBy, aborting).ConfigureAwait(false);
            if (result.Interrupted)
            {
                CoreLog.JobInterrupted(logger, job.Id, registration.Name, attempt);
                backlog.Returned();
                return AttemptOutcome.Done;
            }

            if (result.Succeeded)
            {
                metrics.JobSucceeded(result.Duration);
                backlog.Succeeded();
                return AttemptOutcome.Done;
            }

            return Failed(job, attempt, result);
        }
        finally
        {
            workerSlots.Release();
        }
    }

    private AttemptOutcome Failed(QueuedJob job, int attempt, JobAttemptResult result)
    {
        var jobType = job.Registration.Name;
        if (retry.IsFinal(attempt, result.Permanent))
        {
            metrics.JobDeadLettered(result.Duration);
            CoreLog.JobDeadLettered(logger, result.Error!, job.Id, jobType, attempt);
            var record = new DeadLetteredJob(job.Id, jobType, job.OrderingKey, attempt, result.ErrorText, job.EnqueuedAt, time.GetUtcNow());
            backlog.DeadLettered(job, record);
            return AttemptOutcome.Done;
        }

        var delay = retry.NextDelay(attempt);
        metrics.JobRetried(result.Duration);
        CoreLog.JobRetrying(logger, result.Error!, job.Id, jobType, attempt, delay);
        backlog.Returned();
        return AttemptOutcome.RetryAfter(delay);
    }
}
