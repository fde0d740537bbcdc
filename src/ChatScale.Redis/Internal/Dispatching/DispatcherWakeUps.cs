using System.Buffers.Binary;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// Wake-ups for idle partition readers, at a small cost: an enqueue wakes only the partition's owner (a local signal
/// when that is this instance, else a <c>PUBLISH</c> on the owner's own channel), and wake-ups for one owner are
/// coalesced: every partition that got jobs while one publish was being sent goes into the next single publish.
/// Only a hint: readers also poll every <see cref="RedisDispatcherOptions.PollInterval"/>, so a lost or misrouted
/// wake-up (during a rebalance) costs latency, never a job. A wake-up names the hash of its job's ordering key
/// (<see cref="WakeUpHints"/>), so that a reader whose partition already runs that key can let the key's next ack
/// carry the read.
/// </summary>
/// <remarks>
/// Payload: records of 2 bytes (a partition, or -1 for the shared stream, -2 for a rebalance), big-endian; from this
/// version on, a message that starts with the marker -3 holds records of 6 bytes instead (the partition, then the
/// key hash). An instance of an earlier version reads the hash bytes as partitions too: spurious wake-ups, which
/// cost it an empty read each, nothing else, during a rolling deploy.
/// </remarks>
internal sealed class DispatcherWakeUps : IDisposable
{
    private const int Shared = -1;
    private const int RebalanceMarker = -2;
    private const short HashedMarker = -3;
    private readonly DispatcherRuntime _runtime;
    private readonly Signal[] _partitions;
    private readonly WakeUpHints[] _hints;
    private readonly Action<RedisChannel, RedisValue> _onMessage;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, HashSet<long>> _pending = new(StringComparer.Ordinal); // (partition << 32) | key hash
    private volatile string?[] _owners;
    private bool _subscribed;

    public DispatcherWakeUps(DispatcherRuntime runtime)
    {
        _runtime = runtime;
        _partitions = new Signal[runtime.Partitions];
        _hints = new WakeUpHints[runtime.Partitions];
        for (var i = 0; i < _partitions.Length; i++)
        {
            _partitions[i] = new Signal();
            _hints[i] = new WakeUpHints();
        }

        _owners = new string?[runtime.Partitions];
        _onMessage = OnMessage;
    }

    public Signal SharedSignal { get; } = new();

    /// <summary>Called when another instance joined, left or released a partition.</summary>
    public Action? Rebalanced { get; set; }

    /// <summary>Tells every instance to look at the membership and leases now rather than at its next tick.</summary>
    public void AnnounceRebalance() => Send(string.Empty, RebalanceMarker, 0);

    public Signal Partition(int partition) => _partitions[partition];

    public WakeUpHints Hints(int partition) => _hints[partition];

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

    /// <summary>A job was added to <paramref name="partition"/> (-1: the shared stream) under a key of hash <paramref name="keyHash"/>.</summary>
    public void JobAdded(int partition, uint keyHash)
    {
        if (partition == Shared)
        {
            // Unkeyed jobs: any instance may take them; this one, if it works, is the cheapest to wake.
            if (_subscribed)
            {
                SharedSignal.Set();
                return;
            }

            Send(string.Empty, Shared, 0);
            return;
        }

        var owner = _owners[partition];
        if (IsThisInstance(owner))
        {
            _hints[partition].Add(keyHash);
            _partitions[partition].Set();
            return;
        }

        Send(owner ?? string.Empty, partition, keyHash);
    }

    /// <summary>Jobs of unknown keys were added to <paramref name="partition"/> (-1: the shared stream) by a replay of dead letters: its owner reads at once.</summary>
    public void JobsReplayed(int partition)
    {
        if (partition == Shared)
        {
            JobAdded(Shared, 0);
            return;
        }

        var owner = _owners[partition];
        if (IsThisInstance(owner))
        {
            _hints[partition].AddUnknown();
            _partitions[partition].Set();
            return;
        }

        var payload = new byte[2]; // a record without a key hash: the owner reads at once (rare: not coalesced)
        BinaryPrimitives.WriteInt16BigEndian(payload, (short)partition);
        Publish(owner ?? string.Empty, payload);
    }

    public void Dispose()
    {
        foreach (var signal in _partitions)
        {
            signal.Dispose();
        }

        SharedSignal.Dispose();
    }

    private bool IsThisInstance(string? owner) => owner is not null && string.Equals(owner, _runtime.InstanceId, StringComparison.Ordinal);

    private void Send(string owner, int partition, uint keyHash)
    {
        var record = ((long)partition << 32) | keyHash;
        lock (_lock)
        {
            if (_pending.TryGetValue(owner, out var set))
            {
                set.Add(record); // a flush for this owner is already queued: ride along
                return;
            }

            _pending[owner] = [record];
        }

        ThreadPool.UnsafeQueueUserWorkItem(static state => state.Self.Flush(state.Owner), (Self: this, Owner: owner), preferLocal: false);
    }

    private void Flush(string owner)
    {
        HashSet<long>? set;
        lock (_lock)
        {
            _pending.Remove(owner, out set);
        }

        if (set is null || set.Count == 0)
        {
            return;
        }

        var payload = new byte[2 + (set.Count * 6)];
        BinaryPrimitives.WriteInt16BigEndian(payload, HashedMarker);
        var i = 2;
        foreach (var record in set)
        {
            BinaryPrimitives.WriteInt16BigEndian(payload.AsSpan(i), (short)(record >> 32));
            BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(i + 2), (uint)record);
            i += 6;
        }

        Publish(owner, payload);
    }

    private void Publish(string owner, byte[] payload)
    {
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
        if (bytes is null || bytes.Length < 2)
        {
            return;
        }

        var hashed = BinaryPrimitives.ReadInt16BigEndian(bytes) == HashedMarker;
        var size = hashed ? 6 : 2;
        for (var i = hashed ? 2 : 0; i + size <= bytes.Length; i += size)
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
                if (hashed)
                {
                    _hints[partition].Add(BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(i + 2)));
                }
                else
                {
                    _hints[partition].AddUnknown();
                }

                _partitions[partition].Set();
            }
        }
    }
}
