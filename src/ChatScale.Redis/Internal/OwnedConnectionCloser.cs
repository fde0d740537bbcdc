using Microsoft.Extensions.Hosting;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Closes the Redis connection that <c>AddRedis</c> opened once the host has stopped (after every hosted service's
/// StopAsync), without the graceful QUIT of a disposal: that QUIT waits out the command timeout when Redis does not
/// answer (7 s measured with Redis held by <c>CLIENT PAUSE</c>), and would hold the process's exit after a stop that
/// already ended on time. Nothing of ChatScale sends after its stop, and everything the stop sent was either confirmed
/// or given up. A connection the application registered itself is left alone.
/// </summary>
internal sealed class OwnedConnectionCloser(OwnedRedisConnection owned) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken)
        => owned.Multiplexer?.CloseAsync(allowCommandsToComplete: false) ?? Task.CompletedTask;
}
