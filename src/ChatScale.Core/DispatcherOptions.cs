namespace ChatScale;

/// <summary>Options of the background dispatcher (section <c>ChatScale:Dispatcher</c>).</summary>
public sealed class DispatcherOptions
{
    /// <summary>
    /// How many handlers run at once on this node. Default 64: job handlers mostly wait on I/O (load participants,
    /// publish to Redis), so a processor-count limit would leave the node idle while jobs queue. Lower it for
    /// CPU-bound handlers.
    /// </summary>
    public int WorkerCount { get; set; } = 64;

    /// <summary>
    /// How many partition streams keyed jobs are spread over (Redis): each is its own cluster slot and the unit that
    /// moves between nodes. Inside a partition, and in the in-memory dispatcher, every ordering key has its own lane,
    /// so a retrying or flooded key never holds back another key. Default 64. Every node of a deployment must use the
    /// same value: a key's partition is its stable hash modulo this count.
    /// </summary>
    public int Partitions { get; set; } = 64;

    /// <summary>The in-memory dispatcher's queue capacity; enqueue waits for space beyond it. Default 10,000.</summary>
    public int QueueCapacity { get; set; } = 10_000;

    /// <summary>How many attempts a job gets before it is dead-lettered. Default 5.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>The delay before the first retry; each further retry doubles it (with ±20 % jitter). Default 200 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The longest delay between two attempts. Default 30 s.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);
}
