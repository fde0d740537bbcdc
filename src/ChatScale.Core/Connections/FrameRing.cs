namespace ChatScale.Connections;

/// <summary>
/// A connection's send queue: a FIFO ring of shared frames that grows on demand up to the queue capacity and gives
/// its storage back when it runs empty, so an idle connection holds no array. Not thread-safe: the owning
/// <see cref="ClientConnection"/> guards it with its lock.
/// </summary>
internal struct FrameRing
{
    private const int InitialSlots = 4;

    // Above this many slots an emptied ring releases its array instead of keeping it for the next burst.
    private const int KeptSlots = 16;

    private ReadOnlyMemory<byte>[]? _slots;
    private int _head;
    private int _count;

    public readonly int Count => _count;

    /// <summary>Appends <paramref name="frame"/>; when <paramref name="capacity"/> frames are queued already, fails.</summary>
    public bool TryAdd(ReadOnlyMemory<byte> frame, int capacity)
    {
        if (_count >= capacity)
        {
            return false;
        }

        var slots = _slots;
        if (slots is null || _count == slots.Length)
        {
            slots = Grow(capacity);
        }

        slots[(_head + _count) % slots.Length] = frame;
        _count++;
        return true;
    }

    /// <summary>Drops the oldest frame (the queue is full) and appends <paramref name="frame"/>.</summary>
    public void ReplaceOldest(ReadOnlyMemory<byte> frame)
    {
        var slots = _slots!;
        slots[_head] = frame;
        _head = (_head + 1) % slots.Length;
    }

    /// <summary>
    /// Moves the oldest frames into <paramref name="target"/>: at least one (when any is queued), then more while
    /// their payloads stay within <paramref name="maxBytes"/>.
    /// </summary>
    /// <returns>How many frames were moved.</returns>
    public int TakeBurst(Span<ReadOnlyMemory<byte>> target, int maxBytes)
    {
        var slots = _slots;
        var taken = 0;
        var bytes = 0;
        while (_count > 0 && taken < target.Length)
        {
            ref var slot = ref slots![_head];
            if (taken > 0 && bytes + slot.Length > maxBytes)
            {
                break;
            }

            bytes += slot.Length;
            target[taken++] = slot;
            slot = default;
            _head = (_head + 1) % slots.Length;
            _count--;
        }

        if (_count == 0)
        {
            _head = 0;
            if (slots is { Length: > KeptSlots })
            {
                _slots = null;
            }
        }

        return taken;
    }

    /// <summary>Forgets every queued frame and the storage.</summary>
    /// <returns>How many frames were queued.</returns>
    public int Clear()
    {
        var count = _count;
        _slots = null;
        _head = 0;
        _count = 0;
        return count;
    }

    private ReadOnlyMemory<byte>[] Grow(int capacity)
    {
        var old = _slots;
        var size = old is null ? Math.Min(InitialSlots, capacity) : (int)Math.Min(old.Length * 2L, capacity);
        var slots = new ReadOnlyMemory<byte>[size];
        for (var i = 0; i < _count; i++)
        {
            slots[i] = old![(_head + i) % old.Length];
        }

        _slots = slots;
        _head = 0;
        return slots;
    }
}
