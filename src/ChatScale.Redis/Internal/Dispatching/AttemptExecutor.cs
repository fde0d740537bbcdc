using ChatScale.Dispatching;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>How one attempt of a stored job ended, once settled.</summary>
internal enum AttemptEnd
{
    /// <summary>Succeeded and acked, or dead-lettered: the job is finished.</summary>
    Finished,

    /// <summary>Failed; its retry is recorded with the entry and due after <see cref="StreamJob.Delay"/>.</summary>
    RetryLater,

    /// <summary>Interrupted, refused by the lease, or not started: the job stays pending for whoever owns it next.</summary>
    Stopped,
}

/// <summary>
/// Runs one attempt of one stored job through the shared <see cref="JobAttemptRunner"/> and settles its outcome:
/// ack, record the retry (attempts and next-attempt time, with the entry), or dead-letter.
/// </summary>
internal static class AttemptExecutor
{
    public static async Task<AttemptEnd> RunAsync(DispatcherRuntime runtime, StreamJob job, JobSettler settler, PartitionLease? lease, CancellationToken handlerToken)
    {
        if (job.Malformed is not null)
        {
            return await DeadLetterAsync(runtime, job, settler, Math.Max(1, job.Attempts), job.Malformed, null).ConfigureAwait(false);
        }

        try
        {
            await runtime.Slots.WaitAsync(handlerToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return AttemptEnd.Stopped;
        }

        JobAttemptResult result;
        var attempt = job.Attempts + 1;
        try
        {
            if (lease is not null && !lease.IsValid)
            {
                // The lease lapsed while we waited for a slot: the next owner runs the job, not us.
                return AttemptEnd.Stopped;
            }

            runtime.AttemptStarted();
            try
            {
                var context = new JobContext(job.JobId, job.TypeName, job.Key, attempt, job.EnqueuedAt, lease?.Token ?? 0);
                result = await runtime.Runner.RunAsync(job.Registration, job.Payload, context, job.EnqueuedBy, handlerToken).ConfigureAwait(false);
            }
            finally
            {
                runtime.AttemptEnded();
            }
        }
        finally
        {
            runtime.Slots.Release();
        }

        if (result.Interrupted)
        {
            RedisLog.JobInterrupted(runtime.Logger, job.JobId, job.TypeName, attempt);
            return AttemptEnd.Stopped;
        }

        job.Attempts = attempt;
        if (result.Succeeded)
        {
            runtime.Metrics.Succeeded(result.Duration);
            return await settler.CompleteAsync(job).ConfigureAwait(false) ? AttemptEnd.Finished : AttemptEnd.Stopped;
        }

        if (runtime.Retry.IsFinal(attempt, result.Permanent))
        {
            runtime.Metrics.DeadLettered(result.Duration);
            return await DeadLetterAsync(runtime, job, settler, attempt, result.ErrorText, result.Error).ConfigureAwait(false);
        }

        var delay = runtime.Retry.NextDelay(attempt);
        runtime.Metrics.Retried(result.Duration);
        RedisLog.JobRetrying(runtime.Logger, result.Error!, job.JobId, job.TypeName, attempt, delay);
        job.Delay = delay;
        return await settler.RetryAsync(job, attempt, delay).ConfigureAwait(false) ? AttemptEnd.RetryLater : AttemptEnd.Stopped;
    }

    private static async Task<AttemptEnd> DeadLetterAsync(DispatcherRuntime runtime, StreamJob job, JobSettler settler, int attempts, string error, Exception? exception)
    {
        RedisLog.JobDeadLettered(runtime.Logger, exception ?? new InvalidOperationException(error), job.JobId, job.TypeName, attempts);
        return await settler.DeadLetterAsync(job, attempts, error).ConfigureAwait(false) ? AttemptEnd.Finished : AttemptEnd.Stopped;
    }
}
