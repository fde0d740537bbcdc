using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// One tenure of this instance on one partition: the lease value it proves in every script (<c>instance:token</c>),
/// its fencing token, and <see cref="Lost"/>, which fires as soon as the lease is refused or can no longer be
/// renewed in time: a fifth of the TTL before Redis could expire it, measured from when the last successful renewal
/// was <i>sent</i> (Redis starts the TTL later than that), so this instance always gives up first.
/// </summary>
internal sealed class PartitionLease : IDisposable
{
    private readonly TimeProvider _time;
    private readonly TimeSpan _validity;
    private readonly CancellationTokenSource _lost;
    private long _validUntil;

    public PartitionLease(int partition, string instanceId, long token, TimeSpan ttl, long acquireSentAt, TimeProvider time)
    {
        Partition = partition;
        Token = token;
        Value = instanceId + ":" + token.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _time = time;
        _validity = ttl * 0.8;
        _lost = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        Extend(acquireSentAt);
    }

    public int Partition { get; }

    /// <summary>The fencing token: larger than that of every earlier tenure of any instance on this partition.</summary>
    public long Token { get; }

    /// <summary>What the lease key holds while this tenure lasts.</summary>
    public RedisValue Value { get; }

    /// <summary>Fires when the lease is gone or may be gone: stop starting work, cancel running handlers.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>
    /// Whether this tenure may still act. Once the validity has run out the lease counts as lost at once, even when
    /// the timer behind <see cref="Lost"/> has not fired yet (a starved thread pool runs it late): every waiter learns
    /// it now, and a late renewal reply cannot revive it. Without this, a lane seeing "not valid, not lost" would retry
    /// in a loop on a pool thread, starving the very timer and renewal it waits for.
    /// </summary>
    public bool IsValid
    {
        get
        {
            if (_lost.IsCancellationRequested)
            {
                return false;
            }

            if (_time.GetTimestamp() < Volatile.Read(ref _validUntil))
            {
                return true;
            }

            Lose();
            return false;
        }
    }

    /// <summary>A renewal sent at <paramref name="sentAt"/> succeeded: the lease is ours until then plus 80 % of the TTL.</summary>
    public void Extend(long sentAt)
    {
        var until = sentAt + (long)(_validity.TotalSeconds * _time.TimestampFrequency);
        Volatile.Write(ref _validUntil, until);
        var remaining = TimeSpan.FromSeconds((until - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
        try
        {
            if (remaining <= TimeSpan.Zero)
            {
                _lost.Cancel();
            }
            else
            {
                _lost.CancelAfter(remaining);
            }
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Redis refused our value (or we let it go): the lease is lost now.</summary>
    public void Lose()
    {
        Volatile.Write(ref _validUntil, 0);
        try
        {
            _lost.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose() => _lost.Dispose();
}
