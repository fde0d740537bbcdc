namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// A per-connection message-rate limit. Used by one receive loop only, so it needs no locking; it refills lazily
/// from timestamps, so it owns no timer.
/// </summary>
internal sealed class TokenBucket
{
    private readonly double _ratePerSecond;
    private readonly double _capacity;
    private readonly TimeProvider _time;
    private double _tokens;
    private long _last;

    public TokenBucket(double ratePerSecond, int capacity, TimeProvider time)
    {
        _ratePerSecond = ratePerSecond;
        _capacity = capacity;
        _time = time;
        _tokens = capacity;
        _last = time.GetTimestamp();
    }

    /// <summary>Takes one token; <see langword="false"/> when the client is over its rate.</summary>
    public bool TryTake()
    {
        if (_ratePerSecond <= 0)
        {
            return true;
        }

        var now = _time.GetTimestamp();
        _tokens = Math.Min(_capacity, _tokens + (_time.GetElapsedTime(_last, now).TotalSeconds * _ratePerSecond));
        _last = now;
        if (_tokens < 1)
        {
            return false;
        }

        _tokens -= 1;
        return true;
    }
}
