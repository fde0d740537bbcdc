using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>Maps StackExchange.Redis transport failures to <see cref="BackplaneUnavailableException"/>.</summary>
internal static class RedisFailures
{
    /// <summary>Whether <paramref name="exception"/> means Redis could not be reached (rather than a bug or bad input).</summary>
    public static bool IsUnavailable(Exception exception)
        => exception is RedisConnectionException or RedisTimeoutException;

    public static BackplaneUnavailableException Unavailable(string operation, Exception exception)
        => new($"Redis is unreachable: {operation} failed. Nothing was changed; the call can be retried.", exception);

    /// <summary>
    /// Awaits a Redis command, or stops waiting when <paramref name="cancellationToken"/> fires. StackExchange.Redis
    /// commands cannot be cancelled once sent, so a command abandoned this way is still observed when it completes and
    /// never surfaces as an unobserved task exception.
    /// </summary>
    public static Task<T> WaitAsync<T>(Task<T> command, CancellationToken cancellationToken)
    {
        if (!cancellationToken.CanBeCanceled || command.IsCompleted)
        {
            return command;
        }

        Observe(command);
        return command.WaitAsync(cancellationToken);
    }

    /// <summary>Marks a faulted command's exception observed (for commands whose outcome no one awaits any more).</summary>
    public static void Observe(Task? command)
        => command?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
}
