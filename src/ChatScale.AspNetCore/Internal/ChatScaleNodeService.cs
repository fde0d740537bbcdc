using ChatScale.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// This node's life in presence: a first heartbeat before the server accepts connections, one every
/// <see cref="ChatScaleOptions.HeartbeatInterval"/> after that, and the graceful shutdown sequence.
/// </summary>
/// <remarks>
/// Shutdown runs in <see cref="StoppingAsync"/>, which the host calls before any hosted service's StopAsync, so
/// before Kestrel starts waiting for open requests to finish: WebSockets would otherwise hold the server until its
/// shutdown timeout. The order is: refuse new connections, close every socket with 1001 after its queue drains
/// (within <see cref="ChatScaleOptions.ShutdownDrainTimeout"/>), stop heartbeating, remove the node from presence.
/// </remarks>
internal sealed class ChatScaleNodeService : IHostedLifecycleService, IAsyncDisposable
{
    private readonly IConnectionRegistry _registry;
    private readonly LocalConnections _connections;
    private readonly ChatScaleNodeState _state;
    private readonly ChatScaleOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _stop = new();
    private Task? _heartbeats;

    public ChatScaleNodeService(
        IConnectionRegistry registry,
        LocalConnections connections,
        ChatScaleNodeState state,
        IOptions<ChatScaleOptions> options,
        ILogger<ChatScaleNodeService> logger,
        TimeProvider? timeProvider = null)
    {
        _registry = registry;
        _connections = connections;
        _state = state;
        _options = options.Value;
        _logger = logger;
        _time = timeProvider ?? TimeProvider.System;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Hosted services start before the server, so the node is alive in presence before its first connection.
        await BeatAsync(cancellationToken).ConfigureAwait(false);
        _heartbeats = HeartbeatLoopAsync(_stop.Token);
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        _state.StopAccepting();
        var nodeId = _options.NodeId;
        AspNetCoreLog.ShutdownClosing(_logger, nodeId, _connections.Count, _options.ShutdownDrainTimeout);
        try
        {
            await _connections.CloseAllAsync(ConnectionCloseStatus.GoingAway, "Server shutting down.", _options.ShutdownDrainTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            AspNetCoreLog.ShutdownCloseTimedOut(_logger, nodeId);
        }

        await StopHeartbeatsAsync().ConfigureAwait(false);
        try
        {
            // Bound by the host's deadline, like everything in a stop: the registry sends its first command (the
            // node's heartbeat set to 0, so its users read offline at once) even when the deadline has passed, and
            // what a stalled Redis never confirms expires after ChatScale:PresenceTimeout.
            await _registry.RemoveNodeAsync(nodeId, cancellationToken).ConfigureAwait(false);
            AspNetCoreLog.NodeRemoved(_logger, nodeId);
        }
        catch (Exception ex)
        {
            AspNetCoreLog.RemoveNodeFailed(_logger, ex, nodeId);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => StopHeartbeatsAsync();

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        await StopHeartbeatsAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task StopHeartbeatsAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        if (_heartbeats is { } loop)
        {
            await loop.ConfigureAwait(false);
        }
    }

    private async Task HeartbeatLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                await BeatAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    private async Task BeatAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _registry.HeartbeatAsync(_options.NodeId, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Keep going: a backplane outage must not stop the node; the next beat retries.
            AspNetCoreLog.HeartbeatFailed(_logger, ex, _options.NodeId);
        }
    }
}
