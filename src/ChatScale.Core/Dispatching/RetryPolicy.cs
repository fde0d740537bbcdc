namespace ChatScale.Dispatching;

/// <summary>
/// When a failed attempt is retried and after how long, from <see cref="DispatcherOptions"/>: shared by every
/// dispatcher so that clamping, jitter and the attempt limit cannot drift apart.
/// </summary>
/// <remarks>
/// Backoff options are clamped: a negative <see cref="DispatcherOptions.InitialBackoff"/> counts as zero, a
/// <see cref="DispatcherOptions.MaxBackoff"/> below it as <see cref="DispatcherOptions.InitialBackoff"/>, and both at
/// most <see cref="LongestDelay"/> (timers cannot wait much longer than about 49 days).
/// </remarks>
public sealed class RetryPolicy
{
    /// <summary>The longest retry delay any option can ask for.</summary>
    public static readonly TimeSpan LongestDelay = TimeSpan.FromDays(30);

    private readonly TimeSpan _initial;
    private readonly TimeSpan _max;

    /// <summary>Creates the policy.</summary>
    /// <param name="options">The dispatcher options (read once, here).</param>
    /// <exception cref="ArgumentException"><see cref="DispatcherOptions.MaxAttempts"/> is not positive.</exception>
    public RetryPolicy(DispatcherOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxAttempts <= 0)
        {
            throw new ArgumentException($"{ChatScaleOptions.SectionName}:{nameof(ChatScaleOptions.Dispatcher)}:{nameof(DispatcherOptions.MaxAttempts)} must be greater than 0 (was {options.MaxAttempts}).", nameof(options));
        }

        MaxAttempts = options.MaxAttempts;
        _initial = Clamp(options.InitialBackoff, TimeSpan.Zero, LongestDelay);
        _max = Clamp(options.MaxBackoff, _initial, LongestDelay);
    }

    /// <summary>How many attempts a job gets in total, on all nodes together.</summary>
    public int MaxAttempts { get; }

    /// <summary>Whether a job whose attempt number <paramref name="attempt"/> failed goes to the dead letters.</summary>
    /// <param name="attempt">The attempt that failed, starting at 1.</param>
    /// <param name="permanent">The failure cannot be fixed by retrying (no handler, unreadable payload).</param>
    /// <returns><see langword="true"/> to dead-letter, <see langword="false"/> to retry.</returns>
    public bool IsFinal(int attempt, bool permanent) => permanent || attempt >= MaxAttempts;

    /// <summary>The delay before the attempt after <paramref name="failedAttempt"/>, with jitter.</summary>
    /// <param name="failedAttempt">The attempt that just failed, starting at 1.</param>
    /// <returns>The delay.</returns>
    public TimeSpan NextDelay(int failedAttempt)
    {
#pragma warning disable CA5394 // Jitter only spreads retries out; it needs no cryptographic randomness.
        return RetryBackoff.Compute(failedAttempt, _initial, _max, Random.Shared.NextDouble());
#pragma warning restore CA5394
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;
}
