namespace ChatScale;

/// <summary>A job that failed on every attempt and was parked in the dead-letter queue.</summary>
/// <param name="JobId">The job's id.</param>
/// <param name="JobType">The registered job type name.</param>
/// <param name="OrderingKey">The ordering key, if any.</param>
/// <param name="Attempts">How many attempts were made.</param>
/// <param name="LastError">The last exception's type and message.</param>
/// <param name="EnqueuedAt">When the job was first accepted.</param>
/// <param name="DeadLetteredAt">When it was parked.</param>
public sealed record DeadLetteredJob(
    string JobId,
    string JobType,
    string? OrderingKey,
    int Attempts,
    string LastError,
    DateTimeOffset EnqueuedAt,
    DateTimeOffset DeadLetteredAt);
