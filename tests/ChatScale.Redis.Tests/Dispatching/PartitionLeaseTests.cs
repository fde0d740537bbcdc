using ChatScale.Redis.Internal.Dispatching;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// <see cref="PartitionLease"/>'s local view of its validity when the timer behind <see cref="PartitionLease.Lost"/>
/// runs late (a starved thread pool): the clock, not the timer, decides.
/// </summary>
public sealed class PartitionLeaseTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(1); // valid for 800 ms after a renewal was sent

    [Fact]
    public void ValidityRunOut_WhileItsTimerIsLate_IsValidLosesTheLease_FiringTheHandlersTokenOnce_AndALateRenewalDoesNotReviveIt()
    {
        var clock = new LateTimerClock();
        using var lease = new PartitionLease(3, "instance", token: 7, Ttl, clock.GetTimestamp(), clock);
        using var aborting = new CancellationTokenSource();
        using var handlers = CancellationTokenSource.CreateLinkedTokenSource(aborting.Token, lease.Lost); // as PartitionWorker links it
        var fired = 0;
        handlers.Token.Register(() => Interlocked.Increment(ref fired));

        clock.Advance(TimeSpan.FromMilliseconds(790));
        Assert.True(lease.IsValid);
        Assert.Equal(0, fired);

        clock.Advance(TimeSpan.FromMilliseconds(20)); // past the validity; the timer that would fire Lost has not run
        Assert.False(lease.Lost.IsCancellationRequested);
        Assert.False(lease.IsValid);
        Assert.True(lease.Lost.IsCancellationRequested);
        Assert.True(handlers.IsCancellationRequested);
        Assert.Equal(1, fired);

        // A caller polling it (a lane deciding whether to start its next job) gets a plain "no" every time, nothing
        // fires again, and no new timer is armed: there is nothing to spin on.
        var timers = clock.TimersCreated;
        for (var i = 0; i < 1_000; i++)
        {
            Assert.False(lease.IsValid);
        }

        Assert.Equal(1, fired);
        Assert.Equal(timers, clock.TimersCreated);

        // The reply of a renewal sent before the loss arrives late: it cannot make the lease valid again.
        lease.Extend(clock.GetTimestamp());
        Assert.False(lease.IsValid);
        Assert.Equal(1, fired);
    }

    [Fact]
    public void RenewedInTime_StaysValidPastTheFirstValidity_AndLoseEndsItAtOnce()
    {
        var clock = new LateTimerClock();
        using var lease = new PartitionLease(0, "instance", token: 1, Ttl, clock.GetTimestamp(), clock);
        var fired = 0;
        lease.Lost.Register(() => Interlocked.Increment(ref fired));

        clock.Advance(TimeSpan.FromMilliseconds(500));
        lease.Extend(clock.GetTimestamp()); // a renewal sent now succeeded
        clock.Advance(TimeSpan.FromMilliseconds(700)); // 1.2 s after the acquisition, 700 ms after the renewal was sent
        Assert.True(lease.IsValid);
        Assert.Equal(0, fired);

        lease.Lose(); // Redis refused our value
        Assert.False(lease.IsValid);
        Assert.Equal(1, fired);
        lease.Lose();
        Assert.Equal(1, fired);
    }

    /// <summary>A clock moved by hand whose timers never fire, as when the thread pool is too starved to run them.</summary>
    private sealed class LateTimerClock : TimeProvider
    {
        private long _now = 1_000_000;

        public int TimersCreated { get; private set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _now;

        public void Advance(TimeSpan by) => _now += by.Ticks;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            TimersCreated++;
            return new LateTimer();
        }

        private sealed class LateTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
