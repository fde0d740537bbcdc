namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>Waits for a condition by polling, with a generous deadline instead of sleeps.</summary>
internal static class Poll
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    public static async Task UntilAsync(Func<Task<bool>> condition, string because, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out waiting until {because}.");
            }

            await Task.Delay(25);
        }
    }

    public static Task UntilAsync(Func<bool> condition, string because, TimeSpan? timeout = null)
        => UntilAsync(() => Task.FromResult(condition()), because, timeout);
}
