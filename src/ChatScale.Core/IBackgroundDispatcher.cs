namespace ChatScale;

/// <summary>
/// Runs typed jobs in the background, away from the request that enqueued them, with retries, exponential backoff
/// with jitter, a bounded attempt count and a dead-letter queue.
/// </summary>
/// <remarks>
/// <para><b>Delivery guarantee.</b> At least once. A job whose handler returns is done; one whose handler throws is
/// retried after a growing delay until <see cref="DispatcherOptions.MaxAttempts"/>, then dead-lettered with its last
/// error, where it can be listed, replayed or purged. Handlers must therefore be idempotent (use
/// <see cref="JobContext.JobId"/> or an id inside the job). How durable an accepted job is depends on the
/// implementation: the in-memory dispatcher loses queued jobs when the process exits; the Redis Streams dispatcher
/// keeps them in Redis.</para>
/// <para><b>Ordering.</b> Jobs enqueued with the same non-null ordering key are handled one at a time, in enqueue
/// order, across every worker (and, for a distributed implementation, every node); a job being retried holds back
/// the jobs behind it with the same key. Jobs with different keys, or no key, run in parallel. There is no global
/// order.</para>
/// <para><b>Threading.</b> Thread-safe singleton. Handlers (<see cref="IJobHandler{TJob}"/>) are resolved from a new
/// DI scope for every attempt and may run on any thread-pool thread.</para>
/// </remarks>
public interface IBackgroundDispatcher
{
    /// <summary>Accepts <paramref name="job"/> for background handling and returns as soon as it is queued.</summary>
    /// <typeparam name="TJob">The job type; an <see cref="IJobHandler{TJob}"/> must be registered for it.</typeparam>
    /// <param name="job">The job.</param>
    /// <param name="orderingKey">Jobs sharing this key run one at a time in enqueue order (a conversation id, say); <see langword="null"/> for no ordering.</param>
    /// <param name="cancellationToken">Cancels waiting for queue space.</param>
    /// <returns>The job's id.</returns>
    /// <exception cref="InvalidOperationException">No handler is registered for <typeparamref name="TJob"/>.</exception>
    /// <exception cref="BackplaneUnavailableException">A durable dispatcher could not confirm storing the job: not stored when
    /// <see cref="BackplaneUnavailableException.MayHaveSucceeded"/> is false; possibly stored (it then runs) when true.</exception>
    ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
        where TJob : notnull;

    /// <summary>Lists dead-lettered jobs, oldest first.</summary>
    /// <param name="maxCount">At most this many.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The dead-lettered jobs.</returns>
    ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default);

    /// <summary>Moves dead-lettered jobs back to the queue with a fresh attempt count.</summary>
    /// <param name="jobId">The job to replay, or <see langword="null"/> for all of them.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many jobs were replayed.</returns>
    ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default);

    /// <summary>Deletes every dead-lettered job.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>How many jobs were deleted.</returns>
    ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default);

    /// <summary>Counts queued, running and dead-lettered jobs.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The counts.</returns>
    ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default);
}
