using ChatScale.Dispatching;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class RetryBackoffTests
{
    private static readonly TimeSpan Initial = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(1, 200)]
    [InlineData(2, 400)]
    [InlineData(3, 800)]
    [InlineData(4, 1600)]
    public void Compute_NoJitter_DoublesWithEachFailedAttempt(int failedAttempt, int expectedMilliseconds)
    {
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMilliseconds), RetryBackoff.Compute(failedAttempt, Initial, Max, unitRandom: 0.5));
    }

    [Theory]
    [InlineData(0.0, 160)]
    [InlineData(0.25, 180)]
    [InlineData(0.75, 220)]
    [InlineData(0.999_999, 240)]
    public void Compute_Jitter_SpreadsWithinTwentyPercent(double unitRandom, int expectedMilliseconds)
    {
        Assert.Equal(expectedMilliseconds, RetryBackoff.Compute(1, Initial, Max, unitRandom).TotalMilliseconds, precision: 0);
    }

    [Theory]
    [InlineData(9)]
    [InlineData(30)]
    [InlineData(int.MaxValue)]
    public void Compute_ManyAttempts_NeverExceedsMaxBackoff(int failedAttempt)
    {
        Assert.Equal(Max, RetryBackoff.Compute(failedAttempt, Initial, Max, unitRandom: 0.999));
        Assert.Equal(Max * 0.8, RetryBackoff.Compute(failedAttempt, Initial, Max, unitRandom: 0));
    }

    [Fact]
    public void Compute_ZeroInitialBackoff_IsZero()
    {
        Assert.Equal(TimeSpan.Zero, RetryBackoff.Compute(5, TimeSpan.Zero, TimeSpan.Zero, unitRandom: 0.9));
    }
}
