using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Every <see cref="ChatScaleRedisOptions.SweepInterval"/>, deletes the presence entries of nodes whose heartbeat is
/// older than the presence timeout. Lookups already ignore such entries; this reclaims their memory. Every node runs
/// one; the sweep is atomic per batch, so concurrent sweeps are harmless.
/// </summary>
internal sealed class PresenceSweeper : BackgroundService
{
    private readonly RedisConnectionRegistry _registry;
    private readonly TimeSpan _interval;
    private readonly ILogger _logger;

    public PresenceSweeper(RedisConnectionRegistry registry, IOptions<ChatScaleRedisOptions> redisOptions, ILoggerFactory? loggerFactory = null)
    {
        _registry = registry;
        _interval = redisOptions.Value.SweepInterval;
        _logger = (ILogger?)loggerFactory?.CreateLogger<PresenceSweeper>() ?? NullLogger.Instance;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await _registry.SweepAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // Redis down or a transient error: presence stays correct (dead nodes read offline); try next tick.
                    RedisLog.SweepFailed(_logger, ex, _interval);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
