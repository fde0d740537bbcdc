using System.Threading.Tasks.Sources;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// An auto-reset wake-up that coalesces signals, for <b>one waiter at a time</b> (each loop owns its signals). A wait
/// allocates nothing: it reuses one value-task source and one timer for the timeout, so an idle reader that waits
/// after every read (once per job under load) costs no timer or task per wait.
/// </summary>
internal sealed class Signal : IValueTaskSource<bool>, IDisposable
{
    private const int Idle = 0;
    private const int Waiting = 1;

    private readonly ITimer _timer;
    private ManualResetValueTaskSourceCore<bool> _core;
    private CancellationTokenRegistration _cancellation;
    private int _set;
    private int _state;
    private volatile bool _disposed;

    public Signal()
    {
        _core.RunContinuationsAsynchronously = true; // a Set never runs the waiter's loop on the setter's thread
        _timer = TimeProvider.System.CreateTimer(static state => ((Signal)state!).Complete(false, null), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public void Set()
    {
        Volatile.Write(ref _set, 1);
        if (Volatile.Read(ref _state) == Waiting)
        {
            TakeSet();
        }
    }

    /// <summary>True when signalled, false after <paramref name="timeout"/>; throws when <paramref name="cancellationToken"/> fires.</summary>
    public ValueTask<bool> WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _set, 0) == 1)
        {
            return new ValueTask<bool>(true);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        _core.Reset();
        var version = _core.Version;
        if (cancellationToken.CanBeCanceled)
        {
            // Registered before the wait is published, so its callback can never end a later wait.
            _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((Signal)state!).Complete(false, new OperationCanceledException(token)), this);
        }

        Volatile.Write(ref _state, Waiting);
        if (cancellationToken.IsCancellationRequested)
        {
            Complete(false, new OperationCanceledException(cancellationToken)); // fired between the check and the publish
        }
        else
        {
            Arm(timeout);
            if (Volatile.Read(ref _set) == 1)
            {
                TakeSet(); // a Set that came before the wait was published
            }
        }

        return new ValueTask<bool>(this, version);
    }

    public void Dispose()
    {
        _disposed = true;
        _timer.Dispose();
        Complete(false, null);
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);

    private void Arm(TimeSpan dueTime)
    {
        try
        {
            _timer.Change(dueTime, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: Dispose ends the wait itself.
        }
    }

    private void TakeSet()
    {
        if (Interlocked.Exchange(ref _set, 0) == 1 && !Complete(true, null))
        {
            Volatile.Write(ref _set, 1); // the wait ended otherwise meanwhile: keep the signal for the next one
        }
    }

    /// <summary>Ends the current wait, once: whoever moves it from waiting to idle completes it.</summary>
    private bool Complete(bool result, Exception? error)
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Waiting) != Waiting)
        {
            return false;
        }

        Arm(Timeout.InfiniteTimeSpan);

        _cancellation.Unregister(); // not Dispose: this may run inside that very callback
        if (error is null)
        {
            _core.SetResult(result);
        }
        else
        {
            _core.SetException(error);
        }

        return true;
    }
}
