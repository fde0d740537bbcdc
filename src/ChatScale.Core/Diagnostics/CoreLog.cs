using ChatScale.Connections;
using Microsoft.Extensions.Logging;

namespace ChatScale.Diagnostics;

/// <summary>Every log message of ChatScale.Core, with stable event ids (1xxx).</summary>
internal static partial class CoreLog
{
    [LoggerMessage(1001, LogLevel.Debug, "Connection {ConnectionId} of user {UserId} opened.")]
    public static partial void ConnectionOpened(ILogger logger, string connectionId, string userId);

    [LoggerMessage(1002, LogLevel.Debug, "Connection {ConnectionId} of user {UserId} closed.")]
    public static partial void ConnectionClosed(ILogger logger, string connectionId, string userId);

    [LoggerMessage(1003, LogLevel.Warning, "Connection {ConnectionId} of user {UserId} fell {Capacity} frames behind and is being closed (slow-consumer policy Close).")]
    public static partial void SlowConsumerClosing(ILogger logger, string connectionId, string userId, int capacity);

    [LoggerMessage(1004, LogLevel.Debug, "Sending to connection {ConnectionId} failed; the connection is closed.")]
    public static partial void SendFailed(ILogger logger, Exception exception, string connectionId);

    [LoggerMessage(1005, LogLevel.Debug, "Closing connection {ConnectionId} with {Status} failed.")]
    public static partial void CloseFailed(ILogger logger, Exception exception, string connectionId, ConnectionCloseStatus status);

    [LoggerMessage(1101, LogLevel.Warning, "Job {JobId} ({JobType}) failed on attempt {Attempt}; retrying in {Delay}.")]
    public static partial void JobRetrying(ILogger logger, Exception exception, string jobId, string jobType, int attempt, TimeSpan delay);

    [LoggerMessage(1102, LogLevel.Error, "Job {JobId} ({JobType}) failed {Attempts} times and was dead-lettered.")]
    public static partial void JobDeadLettered(ILogger logger, Exception exception, string jobId, string jobType, int attempts);

    [LoggerMessage(1103, LogLevel.Information, "Replayed {Count} dead-lettered jobs.")]
    public static partial void JobsReplayed(ILogger logger, int count);

    [LoggerMessage(1104, LogLevel.Information, "Job {JobId} ({JobType}) was interrupted by shutdown on attempt {Attempt}; it stays pending and is lost if the process exits.")]
    public static partial void JobInterrupted(ILogger logger, string jobId, string jobType, int attempt);

    [LoggerMessage(1105, LogLevel.Critical, "A background dispatcher loop failed; jobs on it are no longer processed.")]
    public static partial void DispatcherLoopFailed(ILogger logger, Exception exception);

    [LoggerMessage(1106, LogLevel.Debug, "Background dispatcher started: {WorkerCount} concurrent jobs, {Partitions} ordered lanes, {Pending} jobs pending.")]
    public static partial void DispatcherStarted(ILogger logger, int workerCount, int partitions, long pending);

    [LoggerMessage(1107, LogLevel.Warning, "Background dispatcher stopped with {Pending} jobs pending; the in-memory dispatcher loses them when the process exits.")]
    public static partial void DispatcherStoppedWithPending(ILogger logger, long pending);
}
