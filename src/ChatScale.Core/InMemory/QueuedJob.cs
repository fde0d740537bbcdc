using System.Diagnostics;
using ChatScale.Dispatching;

namespace ChatScale.InMemory;

/// <summary>A job held by <see cref="InMemoryBackgroundDispatcher"/>: the object itself (never serialized) and its state.</summary>
internal sealed class QueuedJob(
    string id, JobTypeRegistration registration, object job, string? orderingKey, DateTimeOffset enqueuedAt, ActivityContext enqueuedBy)
{
    public string Id { get; } = id;

    public JobTypeRegistration Registration { get; } = registration;

    public object Job { get; } = job;

    public string? OrderingKey { get; } = orderingKey;

    public DateTimeOffset EnqueuedAt { get; } = enqueuedAt;

    public ActivityContext EnqueuedBy { get; } = enqueuedBy;

    /// <summary>Attempts made so far. Touched only by whichever loop currently owns the job.</summary>
    public int Attempts { get; set; }

    /// <summary>Whether the job still holds one unit of QueueCapacity (until a loop takes it).</summary>
    public bool HoldsQueueSpace { get; set; }
}
