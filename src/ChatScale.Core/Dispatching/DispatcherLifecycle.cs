namespace ChatScale.Dispatching;

/// <summary>
/// The lifecycle every dispatcher follows, in one place: not started → running → stopped → disposed. A dispatcher
/// starts once (a stopped one cannot be restarted); stopping and disposing are idempotent; enqueueing works in every
/// state but disposed. Thread-safe.
/// </summary>
public sealed class DispatcherLifecycle
{
    private const int NotStarted = 0;
    private const int Running = 1;
    private const int Stopped = 2;
    private const int Disposed = 3;

    private readonly Lock _lock = new();
    private int _state;

    /// <summary>Whether <see cref="BeginDispose"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref _state) == Disposed;

    /// <summary>Whether the dispatcher runs (started, not yet stopping).</summary>
    public bool IsRunning => Volatile.Read(ref _state) == Running;

    /// <summary>Runs <paramref name="start"/> and marks the dispatcher running, under the lifecycle's lock.</summary>
    /// <param name="owner">The dispatcher, for the <see cref="ObjectDisposedException"/>.</param>
    /// <param name="name">How the error calls the dispatcher.</param>
    /// <param name="start">Starts the dispatcher's loops.</param>
    /// <exception cref="InvalidOperationException">Already started, or stopped.</exception>
    /// <exception cref="ObjectDisposedException">Disposed.</exception>
    public void Start(object owner, string name, Action start)
    {
        ArgumentNullException.ThrowIfNull(start);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_state == Disposed, owner);
            if (_state != NotStarted)
            {
                throw new InvalidOperationException($"{name} was already started; it cannot be started twice or restarted after it stopped.");
            }

            // The loops outlive the caller: they must not inherit its async-locals (its Activity, say).
            using (ExecutionContext.SuppressFlow())
            {
                start();
            }

            Volatile.Write(ref _state, Running);
        }
    }

    /// <summary>Moves to stopped; <see langword="true"/> when the caller must stop a running dispatcher.</summary>
    /// <returns>Whether the dispatcher was running.</returns>
    public bool BeginStop()
    {
        lock (_lock)
        {
            if (_state == NotStarted)
            {
                Volatile.Write(ref _state, Stopped);
            }

            if (_state != Running)
            {
                return false;
            }

            Volatile.Write(ref _state, Stopped);
            return true;
        }
    }

    /// <summary>Moves to disposed; <see langword="true"/> the first time.</summary>
    /// <returns>Whether the caller must release resources.</returns>
    public bool BeginDispose()
    {
        lock (_lock)
        {
            if (_state == Disposed)
            {
                return false;
            }

            Volatile.Write(ref _state, Disposed);
            return true;
        }
    }
}
