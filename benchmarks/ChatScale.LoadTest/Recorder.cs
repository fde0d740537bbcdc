using System.Diagnostics;

namespace ChatScale.LoadTest;

/// <summary>
/// What the clients received: per message how many deliveries arrived, and for the measured messages the end-to-end
/// latency of each delivery (receive time minus the sender's timestamp in the payload; one process, one clock).
/// </summary>
internal sealed class Recorder
{
    private readonly int[] _counts;
    private readonly long[] _latencies;
    private readonly int _measuredFrom;
    private readonly int _expectedPerMessage;

    public int ExpectedPerMessage => _expectedPerMessage;
    private readonly SemaphoreSlim? _window;
    private int _latencyCount;
    private long _delivered;
    private long _probes;
    private long _lastDelivery;

    // --timeline: each measured delivery's receive timestamp, message and receiving client (in _latencies' order).
    private long[]? _received;
    private int[]? _seqs;
    private int[]? _clientsOf;

    public Recorder(int messages, int measuredFrom, int expectedPerMessage, SemaphoreSlim? window)
    {
        _counts = new int[messages];
        _measuredFrom = measuredFrom;
        _expectedPerMessage = expectedPerMessage;
        _window = window;
        _latencies = new long[Math.Max(0, messages - measuredFrom) * (long)expectedPerMessage];
    }

    public long Delivered => Interlocked.Read(ref _delivered);

    public long Probes => Interlocked.Read(ref _probes);

    public long LastDelivery => Interlocked.Read(ref _lastDelivery);

    public long Duplicates { get; private set; }

    public void OnProbe() => Interlocked.Increment(ref _probes);

    /// <summary>Keeps, for every measured delivery, when it arrived, its message and its client (for <see cref="TimelineRows"/>).</summary>
    public void KeepTimeline()
    {
        _received = new long[_latencies.Length];
        _seqs = new int[_latencies.Length];
        _clientsOf = new int[_latencies.Length];
    }

    /// <summary>With <see cref="KeepTimeline"/>: each measured delivery as (received, latency ticks, message, client).</summary>
    public IEnumerable<(long Received, long Latency, int Seq, int Client)> TimelineRows()
    {
        var n = Math.Min(_latencyCount, _latencies.Length);
        for (var i = 0; i < n && _received is not null; i++)
        {
            yield return (_received[i], _latencies[i], _seqs![i], _clientsOf![i]);
        }
    }

    public void OnMessage(long seq, long sentTimestamp, long now, int client = -1)
    {
        if (seq < 0 || seq >= _counts.Length)
        {
            return;
        }

        var count = Interlocked.Increment(ref _counts[seq]);
        Interlocked.Increment(ref _delivered);
        Interlocked.Exchange(ref _lastDelivery, now);
        if (seq >= _measuredFrom)
        {
            var i = Interlocked.Increment(ref _latencyCount) - 1;
            if (i < _latencies.Length)
            {
                _latencies[i] = now - sentTimestamp;
                if (_received is not null)
                {
                    _received[i] = now;
                    _seqs![i] = (int)seq;
                    _clientsOf![i] = client;
                }
            }
        }

        if (count == _expectedPerMessage)
        {
            _window?.Release();
        }
    }

    /// <summary>Deliveries of messages [from, to) that never arrived, and the extra copies (counted once each).</summary>
    public long Lost(int from, int to)
    {
        long lost = 0, extra = 0;
        for (var i = from; i < to; i++)
        {
            var c = Volatile.Read(ref _counts[i]);
            if (c < _expectedPerMessage)
            {
                lost += _expectedPerMessage - c;
            }
            else
            {
                extra += c - _expectedPerMessage;
            }
        }

        Duplicates = extra;
        return lost;
    }

    public long DeliveredBetween(int from, int to)
    {
        long sum = 0;
        for (var i = from; i < to; i++)
        {
            sum += Math.Min(_expectedPerMessage, Volatile.Read(ref _counts[i]));
        }

        return sum;
    }

    /// <summary>Latency percentiles of the measured deliveries, in milliseconds.</summary>
    public (double P50, double P99, double Max) Percentiles()
    {
        var n = Math.Min(_latencyCount, _latencies.Length);
        if (n == 0)
        {
            return (0, 0, 0);
        }

        var copy = _latencies.AsSpan(0, n).ToArray();
        Array.Sort(copy);
        return (Ms(copy[(int)(n * 0.50)]), Ms(copy[Math.Min(n - 1, (int)(n * 0.99))]), Ms(copy[n - 1]));
    }

    public static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
