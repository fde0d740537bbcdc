using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Maps StackExchange.Redis transport failures to <see cref="BackplaneUnavailableException"/>, and says honestly
/// whether the failed command may still have run.
/// </summary>
/// <remarks>
/// A timeout, or a connection lost after the command was written, tells nothing about the outcome: Redis may have run
/// the command (CLIENT PAUSE, a stalled reply, a slow script) and only the answer was lost. Only a command that provably
/// never left the client (no connection, or still waiting in the backlog when it failed) changed nothing. Callers that
/// must undo a half-known step (presence's register) use <see cref="MayHaveRun"/> to decide to compensate.
/// </remarks>
internal static class RedisFailures
{
    /// <summary>Whether <paramref name="exception"/> means Redis could not be reached (rather than a bug or bad input).</summary>
    public static bool IsUnavailable(Exception exception)
        => exception is RedisConnectionException or RedisTimeoutException;

    /// <summary>
    /// Ends every subscription of <paramref name="queues"/> at once (so a stalled Redis costs one command timeout, not
    /// one per subscription). Redis down, slow or the connection gone: the subscriptions die with the connection, so
    /// those failures are swallowed (<see cref="RedisTimeoutException"/> is a <see cref="TimeoutException"/>, not a
    /// <see cref="RedisException"/>).
    /// </summary>
    public static Task UnsubscribeQuietlyAsync(IEnumerable<ChannelMessageQueue?> queues)
    {
        var unsubscribes = new List<Task>();
        foreach (var queue in queues)
        {
            if (queue is not null)
            {
                unsubscribes.Add(UnsubscribeQuietlyAsync(queue));
            }
        }

        return Task.WhenAll(unsubscribes);
    }

    private static async Task UnsubscribeQuietlyAsync(ChannelMessageQueue queue)
    {
        try
        {
            await queue.UnsubscribeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Whether the command that failed with <paramref name="exception"/> may have been executed by Redis. True for
    /// every timeout and for a connection failure once the command was sent; false only when it was never sent.
    /// </summary>
    public static bool MayHaveRun(Exception exception) => exception switch
    {
        RedisConnectionException c => !(c.FailureType == ConnectionFailureType.UnableToConnect
            || c.CommandStatus is CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog),
        RedisTimeoutException t => t.Commandstatus != CommandStatus.WaitingInBacklog,
        OperationCanceledException => true,
        _ => false,
    };

    public static BackplaneUnavailableException Unavailable(string operation, Exception exception)
        => MayHaveRun(exception)
            ? new($"Redis did not confirm {operation} (a timeout, or the connection dropped after the command was sent): it may or may not have run.", exception) { MayHaveSucceeded = true }
            : new($"Redis is unreachable: {operation} was never sent, so nothing was changed; the call can be retried.", exception);

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

    /// <summary>
    /// Awaits every one of <paramref name="commands"/> (pipelined together, oldest first), or stops waiting when
    /// <paramref name="cancellationToken"/> fires; a failure surfaces as the first failed command's exception, as
    /// awaiting <see cref="Task.WhenAll(Task[])"/> would report it, and no command's failure goes unobserved.
    /// </summary>
    /// <remarks>
    /// StackExchange.Redis completes each command's task with asynchronous continuations, so <c>Task.WhenAll</c> costs
    /// one thread-pool hop per command it waits on (its promise is queued on every completion). Replies on one
    /// connection arrive in the order the commands were sent, so this waits on the newest command first: when it
    /// completes the others have too, and the whole set costs one resumption. Commands spread over several
    /// connections (a cluster's shards) are waited on in turn.
    /// </remarks>
    public static async ValueTask WaitAllAsync(Task[] commands, CancellationToken cancellationToken)
    {
        for (var i = commands.Length - 1; i >= 0; i--)
        {
            var command = commands[i];
            if (command.IsCompleted)
            {
                continue;
            }

            // Failures are reported below, in command order, once every command has completed.
            await (cancellationToken.CanBeCanceled ? command.WaitAsync(cancellationToken) : command).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!command.IsCompleted)
            {
                // Cancelled while waiting: the commands still finish on their own and must not fault unobserved.
                ObserveAll(commands);
                cancellationToken.ThrowIfCancellationRequested();
            }
        }

        foreach (var command in commands)
        {
            if (!command.IsCompletedSuccessfully)
            {
                ObserveAll(commands);
                await command.ConfigureAwait(false);
            }
        }
    }

    private static void ObserveAll(Task[] commands)
    {
        foreach (var command in commands)
        {
            Observe(command);
        }
    }

    /// <summary>Marks a faulted command's exception observed (for commands whose outcome no one awaits any more).</summary>
    public static void Observe(Task? command)
        => command?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>Awaits <paramref name="command"/>, mapping a transport failure to <see cref="BackplaneUnavailableException"/> naming <paramref name="operation"/>.</summary>
    public static async Task<T> RunAsync<T>(Task<T> command, string operation, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            return await WaitAsync(command, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            throw Unavailable(operation, ex);
        }
    }

    /// <summary>Sends <paramref name="batch"/>; when nothing of it could be sent, observes its commands (and <paramref name="also"/>) and throws.</summary>
    public static void Execute(IBatch batch, Task?[] commands, Task? also, string operation)
    {
        try
        {
            batch.Execute();
        }
        catch (Exception ex) when (IsUnavailable(ex))
        {
            foreach (var command in commands)
            {
                Observe(command);
            }

            Observe(also);
            throw Unavailable(operation, ex);
        }
    }
}
