namespace ChatScale;

/// <summary>Options of the background dispatcher (section <c>ChatScale:Dispatcher</c>).</summary>
public sealed class DispatcherOptions
{
    /// <summary>How many jobs run in parallel on this node. Default: the processor count, at least 2.</summary>
    public int WorkerCount { get; set; } = Math.Max(2, Environment.ProcessorCount);

    /// <summary>
    /// How many sequential lanes keyed jobs are hashed onto (in memory) or partition streams they are spread over (Redis).
    /// Jobs of one key always share a lane, so they run in order. Default 16.
    /// </summary>
    public int Partitions { get; set; } = 16;

    /// <summary>The in-memory dispatcher's queue capacity; enqueue waits for space beyond it. Default 10,000.</summary>
    public int QueueCapacity { get; set; } = 10_000;

    /// <summary>How many attempts a job gets before it is dead-lettered. Default 5.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>The delay before the first retry; each further retry doubles it (with ±20 % jitter). Default 200 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest delay between two attempts. Default 30 s.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);
}
