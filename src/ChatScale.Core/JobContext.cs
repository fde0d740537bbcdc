namespace ChatScale;

/// <summary>What a handler knows about the job it is running.</summary>
public sealed class JobContext
{
    /// <summary>Creates a context.</summary>
    /// <param name="jobId">The job's id.</param>
    /// <param name="jobType">The registered job type name.</param>
    /// <param name="orderingKey">The ordering key, if any.</param>
    /// <param name="attempt">The attempt number, starting at 1.</param>
    /// <param name="enqueuedAt">When the job was first accepted.</param>
    public JobContext(string jobId, string jobType, string? orderingKey, int attempt, DateTimeOffset enqueuedAt)
        : this(jobId, jobType, orderingKey, attempt, enqueuedAt, 0)
    {
    }

    /// <summary>Creates a context with a fencing token.</summary>
    /// <param name="jobId">The job's id.</param>
    /// <param name="jobType">The registered job type name.</param>
    /// <param name="orderingKey">The ordering key, if any.</param>
    /// <param name="attempt">The attempt number, starting at 1.</param>
    /// <param name="enqueuedAt">When the job was first accepted.</param>
    /// <param name="fencingToken">The fencing token of the lease this attempt runs under; 0 when there is none.</param>
    public JobContext(string jobId, string jobType, string? orderingKey, int attempt, DateTimeOffset enqueuedAt, long fencingToken)
    {
        JobId = jobId;
        JobType = jobType;
        OrderingKey = orderingKey;
        Attempt = attempt;
        EnqueuedAt = enqueuedAt;
        FencingToken = fencingToken;
    }

    /// <summary>The job's id, stable across retries and replays: use it to make handling idempotent.</summary>
    public string JobId { get; }

    /// <summary>The registered job type name.</summary>
    public string JobType { get; }

    /// <summary>The ordering key the job was enqueued with, if any.</summary>
    public string? OrderingKey { get; }

    /// <summary>The attempt number: 1 for the first run, 2 for the first retry, and so on, counted on every node.</summary>
    public int Attempt { get; }

    /// <summary>When the job was first accepted.</summary>
    public DateTimeOffset EnqueuedAt { get; }

    /// <summary>
    /// The fencing token of the partition lease this attempt of a keyed job runs under: it grows every time any
    /// instance takes the partition, so a later owner always holds a larger token than an earlier one. 0 for jobs
    /// without an ordering key and for the in-memory dispatcher (single process, nothing to fence).
    /// </summary>
    /// <remarks>
    /// The dispatcher itself never runs two attempts of one key at once as long as handlers honour their cancellation
    /// token (it fires before the lease can expire). A process that is frozen (a GC pause, a VM stall, SIGSTOP) cannot
    /// honour anything while frozen, so a handler whose side effects must never be applied out of order by a stale
    /// owner should pass this token to the system it writes to and have that system reject a token smaller than the
    /// largest it has seen for the key (a conditional update such as <c>WHERE fence &lt;= @token</c>).
    /// </remarks>
    public long FencingToken { get; }
}
