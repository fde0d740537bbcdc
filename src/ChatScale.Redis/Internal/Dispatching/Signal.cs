namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>An auto-reset wake-up that coalesces signals.</summary>
internal sealed class Signal : IDisposable
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Dispose() => _semaphore.Dispose();

    public void Set()
    {
        if (_semaphore.CurrentCount == 0)
        {
            try
            {
                _semaphore.Release();
            }
            catch (SemaphoreFullException)
            {
                // Someone else set it first.
            }
            catch (ObjectDisposedException)
            {
                // A late wake-up after disposal: nobody is waiting any more.
            }
        }
    }

    public Task<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken) => _semaphore.WaitAsync(timeout, cancellationToken);
}
