namespace ChatScale.Dispatching;

/// <summary>How one attempt of a job ended (see <see cref="JobAttemptRunner"/>).</summary>
public readonly record struct JobAttemptResult
{
    /// <summary>The handler returned.</summary>
    public bool Succeeded => Error is null && !Interrupted;

    /// <summary>The handler observed its cancellation (shutdown, or a lost lease): the attempt does not count as a failure.</summary>
    public bool Interrupted { get; init; }

    /// <summary>What the handler threw, if it failed.</summary>
    public Exception? Error { get; init; }

    /// <summary>The failure cannot be fixed by retrying on this node (no handler registered, unreadable payload).</summary>
    public bool Permanent { get; init; }

    /// <summary>How long the attempt ran.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>The text stored with a dead-lettered job: the exception's type and message.</summary>
    public string ErrorText => Error is null ? string.Empty : Permanent ? Error.Message : $"{Error.GetType().FullName}: {Error.Message}";
}
