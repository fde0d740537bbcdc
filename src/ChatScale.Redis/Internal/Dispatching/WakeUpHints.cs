namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>What the wake-ups since a partition reader's last read say about the jobs they announce.</summary>
internal enum WakeUpVerdict
{
    /// <summary>No wake-up named a job (a finished job freed room, or a wake-up raced the last read): read.</summary>
    None,

    /// <summary>Every job announced belongs to a key that already has a job read and unfinished: the read can wait for that key's next ack.</summary>
    AllBusy,

    /// <summary>Some job belongs to another key, or a wake-up did not say: read now.</summary>
    ReadNow,
}

/// <summary>
/// The ordering-key hashes (<see cref="ChatScale.Dispatching.OrderingKeyHash.Fnv1a"/>) of the jobs added to one
/// partition since its reader last read, as the wake-ups announced them. Only a hint, like the wake-ups themselves:
/// a reader that trusts it wrongly (a hash shared by two keys) reads a little later, never loses a job.
/// </summary>
internal sealed class WakeUpHints
{
    private const int Capacity = 32;
    private readonly Lock _lock = new();
    private readonly uint[] _hashes = new uint[Capacity];
    private int _count;
    private bool _unknown;

    public void Add(uint keyHash)
    {
        lock (_lock)
        {
            if (_count < Capacity)
            {
                _hashes[_count++] = keyHash;
            }
            else
            {
                _unknown = true;
            }
        }
    }

    /// <summary>A wake-up that did not name its job's key (from an instance of an earlier version).</summary>
    public void AddUnknown()
    {
        lock (_lock)
        {
            _unknown = true;
        }
    }

    /// <summary>A read is being sent: it takes every job announced so far.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _count = 0;
            _unknown = false;
        }
    }

    /// <summary>Judges and clears the hints; <paramref name="busyKeys"/> holds the hashes of the keys with a job read and unfinished.</summary>
    public WakeUpVerdict Take(Dictionary<uint, int> busyKeys)
    {
        lock (_lock)
        {
            var verdict = _unknown ? WakeUpVerdict.ReadNow : _count == 0 ? WakeUpVerdict.None : WakeUpVerdict.AllBusy;
            for (var i = 0; i < _count && verdict == WakeUpVerdict.AllBusy; i++)
            {
                if (!busyKeys.ContainsKey(_hashes[i]))
                {
                    verdict = WakeUpVerdict.ReadNow;
                }
            }

            _count = 0;
            _unknown = false;
            return verdict;
        }
    }
}
