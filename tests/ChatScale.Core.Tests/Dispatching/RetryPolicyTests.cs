using ChatScale.Dispatching;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class RetryPolicyTests
{
    [Fact]
    public void NextDelay_MaxBackoffBelowInitial_IsClampedToInitialWithinJitter()
    {
        var policy = new RetryPolicy(new DispatcherOptions { InitialBackoff = TimeSpan.FromSeconds(1), MaxBackoff = TimeSpan.FromMilliseconds(10) });
        for (var attempt = 1; attempt < 10; attempt++)
        {
            Assert.InRange(policy.NextDelay(attempt), TimeSpan.FromMilliseconds(800), TimeSpan.FromSeconds(1));
        }
    }

    [Fact]
    public void NextDelay_HugeOptions_NeverExceedTheLongestTimerDelay()
    {
        var policy = new RetryPolicy(new DispatcherOptions { InitialBackoff = TimeSpan.MaxValue, MaxBackoff = TimeSpan.MaxValue });
        Assert.True(policy.NextDelay(40) <= RetryPolicy.LongestDelay);
    }

    [Fact]
    public void NegativeInitialBackoff_RetriesAtOnce()
        => Assert.Equal(TimeSpan.Zero, new RetryPolicy(new DispatcherOptions { InitialBackoff = TimeSpan.FromSeconds(-1), MaxBackoff = TimeSpan.Zero }).NextDelay(3));

    [Theory]
    [InlineData(1, false, false)]
    [InlineData(4, false, false)]
    [InlineData(5, false, true)]
    [InlineData(1, true, true)]
    public void IsFinal_CountsEveryAttemptAndPermanentFailures(int attempt, bool permanent, bool expected)
        => Assert.Equal(expected, new RetryPolicy(new DispatcherOptions { MaxAttempts = 5 }).IsFinal(attempt, permanent));

    [Fact]
    public void MaxAttemptsNotPositive_FailsNamingTheOption()
        => Assert.Contains("ChatScale:Dispatcher:MaxAttempts", Assert.Throws<ArgumentException>(() => new RetryPolicy(new DispatcherOptions { MaxAttempts = 0 })).Message, StringComparison.Ordinal);
}
