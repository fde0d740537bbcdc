using System.Buffers.Binary;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Wake-ups for idle partition readers, at a small cost: an enqueue wakes only the partition's owner (a local signal
/// when that is this instance, else a <c>PUBLISH</c> on the owner's own channel), and wake-ups for one owner are
/// coalesced: every partition that got jobs while one publish was being sent goes into the next single publish.
/// Only a hint: readers also poll every <see cref="RedisDispatcherOptions.PollInterval"/>, so a lost or misrouted
/// wake-up (during a rebalance) costs latency, never a job.
/// </summary>
internal sealed class DispatcherWakeUps : IDisposable
{
    private const int Shared = -1;
    private const int RebalanceMarker = -2;
    private readonly DispatcherRuntime _runtime;
    private readonly Signal[] _partitions;
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, HashSet<int>> _pending = new(StringComparer.Ordinal);
    private volatile string?[] _owners;
    private bool _subscribed;

    public DispatcherWakeUps(DispatcherRuntime runtime)
    {
        _runtime = runtime;
        _partitions = new Signal[runtime.Partitions];
        for (var i = 0; i < _partitions.Length; i++)
        {
            _partitions[i] = new Signal();
        }

        _owners = new string?[runtime.Partitions];
        _onMessage = OnMessage;
    }

    public Signal SharedSignal { get; } = new();

    /// <summary>Called when another instance joined, left or released a partition.</summary>
    public Action? Rebalanced { get; set; }

    /// <summary>Tells every instance to look at the membership and leases now rather than at its next tick.</summary>
    public void AnnounceRebalance() => Send(string.Empty, RebalanceMarker);

    public Signal Partition(int partition) => _partitions[partition];

    /// <summary>The coordinator's current view of who owns which partition (by rendezvous hashing).</summary>
    public void SetOwners(string?[] owners) => _owners = owners;

    public async Task SubscribeAsync()
    {
        if (_subscribed)
        {
            return;
        }

        var subscriber = _runtime.Multiplexer.GetSubscriber();
        await subscriber.SubscribeAsync(_runtime.Keys.DispatcherInstanceWakeChannel(_runtime.InstanceId), _onMessage).ConfigureAwait(false);
        await subscriber.SubscribeAsync(_runtime.Keys.DispatcherWakeChannel, _onMessage).ConfigureAwait(false);
        _subscribed = true;
    }

    public async Task UnsubscribeAsync()
    {
        if (!_subscribed)
        {
            return;
        }

        _subscribed = false;
        try
        {
            var subscriber = _runtime.Multiplexer.GetSubscriber();
            await subscriber.UnsubscribeAsync(_runtime.Keys.DispatcherInstanceWakeChannel(_runtime.InstanceId), _onMessage).ConfigureAwait(false);
            await subscriber.UnsubscribeAsync(_runtime.Keys.DispatcherWakeChannel, _onMessage).ConfigureAwait(false);
        }
        catch (Exception ex) when (DispatcherRuntime.IsGone(ex))
        {
        }
    }

    /// <summary>A job was added to <paramref name="partition"/> (-1: the shared stream).</summary>
    public void JobAdded(int partition)
    {
        if (partition == Shared)
        {
            // Unkeyed jobs: any instance may take them; this one, if it works, is the cheapest to wake.
            if (_subscribed)
            {
                SharedSignal.Set();
                return;
            }

            Send(string.Empty, Shared);
            return;
        }

        var owner = _owners[partition];
        if (owner is not null && string.Equals(owner, _runtime.InstanceId, StringComparison.Ordinal))
        {
            _partitions[partition].Set();
            return;
        }

        Send(owner ?? string.Empty, partition);
    }

    public void Dispose()
    {
        foreach (var signal in _partitions)
        {
            signal.Dispose();
        }

        SharedSignal.Dispose();
    }

    private void Send(string owner, int partition)
    {
        lock (_lock)
        {
            if (_pending.TryGetValue(owner, out var set))
            {
                set.Add(partition); // a flush for this owner is already queued: ride along
                return;
            }

            _pending[owner] = [partition];
        }

        ThreadPool.UnsafeQueueUserWorkItem(static state => state.Self.Flush(state.Owner), (Self: this, Owner: owner), preferLocal: false);
    }

    private void Flush(string owner)
    {
        HashSet<int>? set;
        lock (_lock)
        {
            _pending.Remove(owner, out set);
        }

        if (set is null || set.Count == 0)
        {
            return;
        }

        var payload = new byte[set.Count * 2];
        var i = 0;
        foreach (var partition in set)
        {
            BinaryPrimitives.WriteInt16BigEndian(payload.AsSpan(i), (short)partition);
            i += 2;
        }

        var channel = owner.Length == 0 ? _runtime.Keys.DispatcherWakeChannel : _runtime.Keys.DispatcherInstanceWakeChannel(owner);
        try
        {
            _runtime.Multiplexer.GetSubscriber().Publish(channel, payload, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (DispatcherRuntime.IsGone(ex))
        {
        }
    }

    private void OnMessage(RedisChannel channel, RedisValue message)
    {
        var bytes = (byte[]?)message;
        if (bytes is null)
        {
            return;
        }

        for (var i = 0; i + 1 < bytes.Length; i += 2)
        {
            var partition = BinaryPrimitives.ReadInt16BigEndian(bytes.AsSpan(i));
            if (partition == Shared)
            {
                SharedSignal.Set();
            }
            else if (partition == RebalanceMarker)
            {
                Rebalanced?.Invoke();
            }
            else if (partition >= 0 && partition < _partitions.Length)
            {
                _partitions[partition].Set();
            }
        }
    }
}
