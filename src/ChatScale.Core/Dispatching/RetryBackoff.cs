namespace ChatScale.Dispatching;

/// <summary>The retry delay: exponential from <see cref="DispatcherOptions.InitialBackoff"/>, ±20 % jitter, capped.</summary>
/// <remarks>Public for the same reason as <see cref="OrderingKeyHash"/>: every dispatcher package retries on one schedule.</remarks>
public static class RetryBackoff
{
    private const double Jitter = 0.2;

    /// <summary>The delay before the attempt after <paramref name="failedAttempt"/>.</summary>
    /// <param name="failedAttempt">The attempt that just failed, starting at 1.</param>
    /// <param name="initial">The delay after the first failure, before jitter.</param>
    /// <param name="max">The longest delay, jitter included.</param>
    /// <param name="unitRandom">A number in [0, 1) that picks the jitter: 0 gives -20 %, 0.5 none, towards 1 +20 %.</param>
    /// <returns>The delay.</returns>
    public static TimeSpan Compute(int failedAttempt, TimeSpan initial, TimeSpan max, double unitRandom)
    {
        // Doubles cannot overflow here (2^int.MaxValue is +infinity, and Math.Min takes care of it).
        var exponential = Math.Min(initial.Ticks * Math.Pow(2, Math.Max(0, failedAttempt - 1)), max.Ticks);
        var jittered = exponential * (1 - Jitter + (2 * Jitter * unitRandom));
        return TimeSpan.FromTicks((long)Math.Clamp(jittered, 0, max.Ticks));
    }
}
