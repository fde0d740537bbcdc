namespace ChatScale.Redis;

/// <summary>
/// Options of <see cref="RedisStreamDispatcher"/> (section <c>ChatScale:Redis:Dispatcher</c>). Worker count, partition
/// count, attempts and backoff are the common <see cref="DispatcherOptions"/> (section <c>ChatScale:Dispatcher</c>).
/// </summary>
/// <remarks>
/// Every node of a deployment must use the same <see cref="DispatcherOptions.Partitions"/> and key prefix: a key's
/// partition is its stable hash modulo the partition count, so nodes that disagree would run one key on two partitions
/// and lose its order.
/// </remarks>
public sealed class RedisDispatcherOptions
{
    /// <summary>
    /// How long a partition lease and a dispatcher's membership last without renewal. The owner renews both every third
    /// of it; a crashed node's partitions are taken over by the others once it has passed. Shorter means faster takeover,
    /// longer means more tolerance for a slow or briefly disconnected owner. The owner gives a lease up (cancelling its
    /// handlers) when no renewal has succeeded for 80 % of it, so it must be well above the longest stall of the
    /// process's thread pool (which runs the renewal timer): with 1 s, a pool starved for half a second loses its
    /// leases. Default 10 s.
    /// </summary>
    public TimeSpan LeaseTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The longest an idle worker waits before looking for jobs again. New jobs normally start at once: enqueueing
    /// publishes a wake-up on the backplane, and this is only the fallback when one is lost. Default 1 s.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How many entries a partition owner reads from its stream at a time (it still runs them one by one). Default 16.</summary>
    public int ReadBatchSize { get; set; } = 16;

    /// <summary>
    /// An optional hard cap on each job stream's length (<c>XADD ... MAXLEN ~</c>). Finished jobs are deleted at once, so
    /// streams only hold unfinished jobs; when the backlog exceeds this cap, Redis drops the <b>oldest unfinished</b> jobs.
    /// Leave it <see langword="null"/> (the default) unless losing jobs is better than running out of memory.
    /// </summary>
    public long? MaxStreamLength { get; set; }

    /// <summary>
    /// How long <see cref="IBackgroundDispatcher.EnqueueAsync{TJob}"/> keeps retrying while Redis is unreachable before
    /// throwing <see cref="BackplaneUnavailableException"/>. Zero (the default) throws at once, which suits a request
    /// path: the caller can answer 503 instead of hanging. A retried enqueue whose first try timed out (rather than
    /// failing to connect) may store the job twice, under the same job id.
    /// </summary>
    public TimeSpan EnqueueRetryTimeout { get; set; } = TimeSpan.Zero;
}
