using System.Diagnostics.Metrics;
using System.Threading.Channels;
using ChatScale.Backplane;
using ChatScale.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// The receiving half of the backplane: subscribes to this node's channel and the all-nodes channel, decodes each
/// envelope and hands it to <see cref="LocalConnections"/>.
/// </summary>
/// <remarks>
/// Each channel has one <see cref="ChannelMessageQueue"/> read by one loop, so a channel's messages are delivered one
/// at a time in the order Redis sent them (concurrent handlers would reorder a conversation). StackExchange.Redis
/// re-establishes subscriptions itself after a reconnect and keeps the queue open; should a queue complete anyway
/// (someone unsubscribed it), the loop subscribes again. A malformed envelope is counted, logged and dropped.
/// <para><b>Truth about receiving.</b> <see cref="BackplaneReadiness"/> is marked not receiving until both channels are
/// subscribed, and again whenever a subscription connection fails. After a reconnect the listener proves its node
/// channel is subscribed again (a PUBLISH of an empty probe to it must count at least one receiver) before marking it
/// receiving; then it closes this node's connections with 1012 (Service Restart), because frames published meanwhile
/// were lost: clients reconnect and catch up from history.</para>
/// </remarks>
internal sealed class RedisBackplaneListener : IHostedService, IAsyncDisposable
{
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);

    // Published to this node's own channel to prove it is subscribed again; never a valid envelope (no magic byte).
    private static readonly byte[] Probe = "chatscale:probe"u8.ToArray();

    // How long host startup waits for the first subscription. Within it, a failed attempt (the multiplexer still
    // connecting, say) is retried before the node takes clients, so none connects to a node that cannot yet receive.
    // Past it, startup goes on degraded (Redis down at boot must not stop the host) and the loop keeps retrying.
    private static readonly TimeSpan StartupSubscribeTimeout = TimeSpan.FromSeconds(10);

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly LocalConnections _connections;
    private readonly RedisKeyspace _keys;
    private readonly string _nodeId;
    private readonly int _maxPayloadBytes;
    private readonly RedisMetrics _metrics;
    private readonly ILogger _logger;
    private readonly BackplaneReadiness _readiness;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private Task _loops = Task.CompletedTask;
    private Task _verifying = Task.CompletedTask;
    private int _subscribedChannels;
    private bool _everReceived;
    private readonly bool _closeAfterResubscribe;
    private int _disposed;

    public RedisBackplaneListener(
        IConnectionMultiplexer multiplexer,
        LocalConnections connections,
        IOptions<ChatScaleOptions> options,
        IOptions<ChatScaleRedisOptions> redisOptions,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        BackplaneReadiness? readiness = null)
    {
        _multiplexer = multiplexer;
        _readiness = readiness ?? new BackplaneReadiness();
        _connections = connections;
        var redis = redisOptions.Value;
        _keys = new RedisKeyspace(redis.KeyPrefix, redis.UseShardedPubSub);
        _nodeId = options.Value.NodeId;
        _maxPayloadBytes = options.Value.MaxPayloadBytes;
        _closeAfterResubscribe = redis.CloseConnectionsAfterResubscribe;
        _metrics = new RedisMetrics(meterFactory);
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisBackplaneListener>() ?? NullLogger.Instance;
    }

    /// <summary>
    /// Starts listening. Returns once both channels have been subscribed (or a first attempt failed, in which case the
    /// loops keep retrying in the background), so messages published after start are not missed.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _readiness.MarkNotReceiving("the backplane listener is subscribing");
        _multiplexer.ConnectionFailed += OnConnectionFailed;
        _multiplexer.ConnectionRestored += OnConnectionRestored;
        var nodeReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var allReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _loops = Task.WhenAll(
            ListenAsync(_keys.NodeChannel(_nodeId), nodeReady, _stopping.Token),
            ListenAsync(_keys.AllNodesChannel, allReady, _stopping.Token));
        return Task.WhenAll(nodeReady.Task, allReady.Task).WaitAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Detach();
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_loops, VerifyingTask()).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host's shutdown deadline passed (an unsubscribe waiting on a slow Redis): the loops are cancelled and
            // end on their own; the host goes on stopping, as it does past a BackgroundService's deadline.
            RedisLog.ListenerStopTimedOut(_logger, _nodeId);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Detach();
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loops.ConfigureAwait(false);
            await VerifyingTask().ConfigureAwait(false);
        }
        finally
        {
            _stopping.Dispose();
            _metrics.Dispose();
        }
    }

    private async Task ListenAsync(RedisChannel channel, TaskCompletionSource ready, CancellationToken stopping)
    {
        // Leave StartAsync's caller right away; the loop runs on the thread pool.
        await Task.Yield();
        var delay = TimeSpan.FromMilliseconds(100);
        var name = channel.ToString();
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (!stopping.IsCancellationRequested)
        {
            ChannelMessageQueue queue;
            try
            {
                queue = await _multiplexer.GetSubscriber().SubscribeAsync(channel).ConfigureAwait(false);
            }
            catch (Exception) when (stopping.IsCancellationRequested)
            {
                break; // stopped while subscribing: there is nothing to unsubscribe
            }
            catch (Exception ex)
            {
                RedisLog.SubscribeFailed(_logger, ex, _nodeId, name, delay);
                if (started.Elapsed >= StartupSubscribeTimeout)
                {
                    ready.TrySetResult();
                }

                try
                {
                    await Task.Delay(delay, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
                continue;
            }

            RedisLog.Subscribed(_logger, _nodeId, name);
            if (Interlocked.Increment(ref _subscribedChannels) == 2 && _multiplexer.IsConnected)
            {
                BecameReceiving("subscribed");
            }

            ready.TrySetResult();
            delay = TimeSpan.FromMilliseconds(100);
            try
            {
                while (true)
                {
                    var message = await queue.ReadAsync(stopping).ConfigureAwait(false);
                    Handle(message.Message, name);
                }
            }
            catch (ChannelClosedException)
            {
                Interlocked.Decrement(ref _subscribedChannels);
                if (!stopping.IsCancellationRequested && _readiness.MarkNotReceiving($"the subscription to {name} ended"))
                {
                    RedisLog.NotReceiving(_logger, _nodeId, _readiness.Reason);
                }

                // The queue completed: it was unsubscribed (or the connection disposed). Subscribe again unless stopping.
                if (!stopping.IsCancellationRequested)
                {
                    RedisLog.SubscriptionEnded(_logger, name);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                await RedisFailures.UnsubscribeQuietlyAsync([queue]).ConfigureAwait(false);
            }
        }

        ready.TrySetResult();
        RedisLog.ListenerStopped(_logger, _nodeId);
    }

    private void Handle(RedisValue value, string channel)
    {
        ReadOnlyMemory<byte> data = (byte[]?)value ?? [];
        if (data.Span.SequenceEqual(Probe))
        {
            return; // A probe of this listener's own subscription (VerifyAsync), not an envelope.
        }

        BackplaneEnvelope envelope;
        try
        {
            envelope = EnvelopeCodec.Decode(data, _maxPayloadBytes);
            if (envelope.Kind == EnvelopeKind.Group)
            {
                // Group envelopes travel only on group channels (GroupNode resolves their members); delivered here, the
                // group id would be taken for a user id and reach a user named like the group.
                throw new EnvelopeFormatException("A group envelope arrived on a node or all-nodes channel.");
            }
        }
        catch (EnvelopeFormatException ex)
        {
            _metrics.Malformed();
            RedisLog.MalformedEnvelope(_logger, ex, channel, data.Length);
            return;
        }

        try
        {
            _connections.Deliver(envelope);

            _metrics.Received();
        }
        catch (Exception ex)
        {
            // One bad delivery must not stop the node from receiving: log it and go on with the next message.
            RedisLog.DeliveryFailed(_logger, ex, envelope.MessageId, envelope.OriginNodeId);
        }
    }

    private void OnConnectionFailed(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType == ConnectionType.Subscription && !_stopping.IsCancellationRequested
            && _readiness.MarkNotReceiving($"the subscription connection to {e.EndPoint} failed ({e.FailureType})"))
        {
            RedisLog.NotReceiving(_logger, _nodeId, _readiness.Reason);
        }
    }

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType != ConnectionType.Subscription || _stopping.IsCancellationRequested)
        {
            return;
        }

        lock (_gate)
        {
            if (_verifying.IsCompleted)
            {
                _verifying = VerifyAsync(_stopping.Token);
            }
        }
    }

    // StackExchange.Redis resubscribes by itself after a reconnect, at some point after ConnectionRestored: wait until
    // a probe published to this node's channel counts a receiver (only this node subscribes to it).
    private async Task VerifyAsync(CancellationToken stopping)
    {
        await Task.Yield();
        var channel = _keys.NodeChannel(_nodeId);
        while (!stopping.IsCancellationRequested && !_readiness.IsReceiving)
        {
            try
            {
                var receivers = await _multiplexer.GetSubscriber().PublishAsync(channel, Probe).ConfigureAwait(false);
                if (receivers > 0 && Volatile.Read(ref _subscribedChannels) == 2 && _multiplexer.GetSubscriber().IsConnected(_keys.AllNodesChannel))
                {
                    BecameReceiving("resubscribed after a reconnect");
                    return;
                }
            }
            catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
            {
                // Still down: try again.
            }

            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void BecameReceiving(string how)
    {
        if (!_readiness.MarkReceiving())
        {
            return;
        }

        var resubscribed = _everReceived;
        _everReceived = true;
        var close = resubscribed && _closeAfterResubscribe;
        RedisLog.Receiving(_logger, _nodeId, how, close ? _connections.Count : 0);
        if (close && _connections.Count > 0)
        {
            // Frames published while this node was not subscribed are lost: tell its clients to reconnect and catch up.
            RedisFailures.Observe(_connections.CloseAllAsync(ConnectionCloseStatus.ServiceRestart, "Backplane resubscribed; reconnect and catch up.", TimeSpan.FromSeconds(5), _stopping.Token));
        }
    }

    private Task VerifyingTask()
    {
        lock (_gate)
        {
            return _verifying;
        }
    }

    private void Detach()
    {
        _multiplexer.ConnectionFailed -= OnConnectionFailed;
        _multiplexer.ConnectionRestored -= OnConnectionRestored;
    }
}
