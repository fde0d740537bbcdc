using Microsoft.Extensions.Logging;

namespace ChatScale.Redis.Internal;

/// <summary>Every log message of ChatScale.Redis, with stable event ids (2xxx).</summary>
internal static partial class RedisLog
{
    [LoggerMessage(2001, LogLevel.Information, "Backplane listener of node {NodeId} subscribed to {Channel}.")]
    public static partial void Subscribed(ILogger logger, string nodeId, string channel);

    [LoggerMessage(2002, LogLevel.Warning, "Backplane listener of node {NodeId} could not subscribe to {Channel}; retrying in {Delay}.")]
    public static partial void SubscribeFailed(ILogger logger, Exception exception, string nodeId, string channel, TimeSpan delay);

    [LoggerMessage(2003, LogLevel.Warning, "Dropped a malformed backplane envelope of {Length} bytes on {Channel}.")]
    public static partial void MalformedEnvelope(ILogger logger, Exception exception, string channel, int length);

    [LoggerMessage(2004, LogLevel.Error, "Delivering backplane message {MessageId} from node {OriginNodeId} failed.")]
    public static partial void DeliveryFailed(ILogger logger, Exception exception, Guid messageId, string originNodeId);

    [LoggerMessage(2005, LogLevel.Warning, "The subscription to {Channel} ended unexpectedly; resubscribing.")]
    public static partial void SubscriptionEnded(ILogger logger, string channel);

    [LoggerMessage(2006, LogLevel.Debug, "Backplane listener of node {NodeId} stopped.")]
    public static partial void ListenerStopped(ILogger logger, string nodeId);

    [LoggerMessage(2009, LogLevel.Warning, "Backplane listener of node {NodeId} had not stopped by the host's shutdown deadline; its subscriptions end with the connection.")]
    public static partial void ListenerStopTimedOut(ILogger logger, string nodeId);

    [LoggerMessage(2007, LogLevel.Warning, "Node {NodeId} is not receiving from the backplane ({Reason}): it stops heartbeating presence and reports Unhealthy until it is subscribed again.")]
    public static partial void NotReceiving(ILogger logger, string nodeId, string reason);

    [LoggerMessage(2008, LogLevel.Information, "Node {NodeId} receives from the backplane again ({How}); closing its {Connections} connection(s) with 1012 so they reconnect and catch up.")]
    public static partial void Receiving(ILogger logger, string nodeId, string how, int connections);

    [LoggerMessage(2102, LogLevel.Debug, "Node {NodeId}'s channel had no subscriber: its {Users} recipient(s) are reported offline.")]
    public static partial void DeadRoute(ILogger logger, string nodeId, int users);

    [LoggerMessage(2101, LogLevel.Warning, "Publishing to the Redis backplane failed: Redis is unreachable.")]
    public static partial void PublishFailed(ILogger logger, Exception exception);

    [LoggerMessage(2203, LogLevel.Warning, "Presence of node {NodeId} differed from its connections in {Buckets} bucket(s) (Redis lost entries, or kept ones it should not): re-registered {Lost} lost and removed {Ghosts} stale entries.")]
    public static partial void PresenceRepaired(ILogger logger, string nodeId, int buckets, int lost, int ghosts);

    [LoggerMessage(2204, LogLevel.Warning, "Redis did not confirm the {Operation} of connection {ConnectionId} on node {NodeId}; its removal is retried on every heartbeat until Redis confirms.")]
    public static partial void RemovalUnconfirmed(ILogger logger, string operation, string connectionId, string nodeId);

    [LoggerMessage(2205, LogLevel.Information, "Redis confirmed the removal of connection {ConnectionId} on node {NodeId} after an earlier failure.")]
    public static partial void UnconfirmedRemoved(ILogger logger, string connectionId, string nodeId);

    [LoggerMessage(2201, LogLevel.Information, "Swept {Removed} presence entries of dead node {NodeId}.")]
    public static partial void NodeSwept(ILogger logger, string nodeId, long removed);

    [LoggerMessage(2202, LogLevel.Warning, "The presence sweep failed; it runs again in {Interval}.")]
    public static partial void SweepFailed(ILogger logger, Exception exception, TimeSpan interval);

    [LoggerMessage(2501, LogLevel.Information, "Redis stream dispatcher {InstanceId} of node {NodeId} started: {Partitions} partitions, {WorkerCount} workers.")]
    public static partial void DispatcherStarted(ILogger logger, string instanceId, string nodeId, int partitions, int workerCount);

    [LoggerMessage(2502, LogLevel.Information, "Redis stream dispatcher {InstanceId} stopped.")]
    public static partial void DispatcherStopped(ILogger logger, string instanceId);

    [LoggerMessage(2517, LogLevel.Warning, "Redis stream dispatcher {InstanceId} gave up {Step} at the host's shutdown deadline (plus its grace); its leases and membership expire after the lease TTL.")]
    public static partial void DispatcherStopAbandoned(ILogger logger, string instanceId, string step);

    // Routine take/release at Debug; taking over another owner's unfinished jobs is worth an Information.
    [LoggerMessage(EventId = 2503, Message = "Dispatcher {InstanceId} took partition {Partition} (fencing token {Token}) and reclaimed {Reclaimed} unfinished job(s) of its previous owner.")]
    public static partial void PartitionAcquired(ILogger logger, LogLevel level, string instanceId, int partition, long token, int reclaimed);

    [LoggerMessage(2504, LogLevel.Debug, "Dispatcher {InstanceId} released partition {Partition}.")]
    public static partial void PartitionReleased(ILogger logger, string instanceId, int partition);

    // A Warning only when a job was running: then another instance may run it again (at least once).
    [LoggerMessage(EventId = 2505, Message = "Dispatcher {InstanceId} lost the lease of partition {Partition} with {Running} job(s) running; their handlers were cancelled and another instance may run them again.")]
    public static partial void PartitionLeaseLost(ILogger logger, LogLevel level, string instanceId, int partition, int running);

    [LoggerMessage(2506, LogLevel.Warning, "Dispatcher coordination (membership, leases) failed; retrying in {Delay}.")]
    public static partial void CoordinationFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(2507, LogLevel.Warning, "A dispatcher worker could not reach Redis; retrying in {Delay}.")]
    public static partial void WorkerRedisFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(2508, LogLevel.Warning, "Job {JobId} ({JobType}) failed on attempt {Attempt}; retrying in {Delay}.")]
    public static partial void JobRetrying(ILogger logger, Exception exception, string jobId, string jobType, int attempt, TimeSpan delay);

    [LoggerMessage(2509, LogLevel.Error, "Job {JobId} ({JobType}) failed {Attempts} times and was moved to the dead-letter stream.")]
    public static partial void JobDeadLettered(ILogger logger, Exception exception, string jobId, string jobType, int attempts);

    [LoggerMessage(2510, LogLevel.Information, "Replayed {Count} dead-lettered job(s).")]
    public static partial void JobsReplayed(ILogger logger, int count);

    [LoggerMessage(2511, LogLevel.Information, "Dispatcher {InstanceId} reclaimed {Count} unfinished job(s) of dead consumer {Consumer}.")]
    public static partial void ConsumerReclaimed(ILogger logger, string instanceId, int count, string consumer);

    [LoggerMessage(2512, LogLevel.Error, "A dispatcher loop failed unexpectedly.")]
    public static partial void DispatcherLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(2513, LogLevel.Warning, "Enqueueing a job failed: Redis is unreachable.")]
    public static partial void EnqueueFailed(ILogger logger, Exception exception);

    [LoggerMessage(2514, LogLevel.Information, "Job {JobId} ({JobType}) was interrupted on attempt {Attempt}; it stays in Redis and runs again.")]
    public static partial void JobInterrupted(ILogger logger, string jobId, string jobType, int attempt);

    [LoggerMessage(2515, LogLevel.Warning, "Settling job entry {EntryId} failed; retrying in {Delay} (the job stays pending meanwhile).")]
    public static partial void SettleFailed(ILogger logger, Exception exception, string entryId, TimeSpan delay);

    [LoggerMessage(2516, LogLevel.Debug, "Dispatcher {InstanceId}: a fenced {Operation} on partition {Partition} was refused (the lease has moved on).")]
    public static partial void FencedRefused(ILogger logger, string instanceId, string operation, int partition);
}
