namespace ChatScale;

/// <summary>Handles jobs of type <typeparamref name="TJob"/> enqueued on an <see cref="IBackgroundDispatcher"/>.</summary>
/// <typeparam name="TJob">The job type.</typeparam>
/// <remarks>
/// Delivery is at least once: a handler may see the same job again after a failure or a worker crash, so make it
/// idempotent. Throwing fails the attempt and schedules a retry; returning completes the job.
/// </remarks>
public interface IJobHandler<in TJob>
{
    /// <summary>Handles one attempt of one job.</summary>
    /// <param name="job">The job.</param>
    /// <param name="context">The job's id, ordering key and attempt number.</param>
    /// <param name="cancellationToken">Signalled when the host shuts down.</param>
    /// <returns>A task that completes when the job is done.</returns>
    ValueTask HandleAsync(TJob job, JobContext context, CancellationToken cancellationToken);
}
