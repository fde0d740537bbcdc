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
    {
        JobId = jobId;
        JobType = jobType;
        OrderingKey = orderingKey;
        Attempt = attempt;
        EnqueuedAt = enqueuedAt;
    }

    /// <summary>The job's id, stable across retries and replays: use it to make handling idempotent.</summary>
    public string JobId { get; }

    /// <summary>The registered job type name.</summary>
    public string JobType { get; }

    /// <summary>The ordering key the job was enqueued with, if any.</summary>
    public string? OrderingKey { get; }

    /// <summary>The attempt number: 1 for the first run, 2 for the first retry, and so on.</summary>
    public int Attempt { get; }

    /// <summary>When the job was first accepted.</summary>
    public DateTimeOffset EnqueuedAt { get; }
}
