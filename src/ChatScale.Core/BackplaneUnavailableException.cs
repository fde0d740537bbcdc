namespace ChatScale;

/// <summary>
/// The backplane (for example Redis) could not be reached, or did not confirm the operation in time. When
/// <see cref="MayHaveSucceeded"/> is false nothing was published or enqueued and a retry is safe; when it is true (a
/// timeout, or a connection lost after the command was sent) the backplane may have carried the operation out, so a
/// retry may publish or enqueue it a second time. The background dispatcher treats it as a transient failure.
/// </summary>
public sealed class BackplaneUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public BackplaneUnavailableException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What failed.</param>
    public BackplaneUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the transport's exception.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The underlying failure.</param>
    public BackplaneUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// Whether the backplane may have carried the operation out before the failure: true after a timeout or a
    /// connection lost once the command was sent (a publish may have been delivered, a job may have been stored and
    /// will then run), false when the command provably never left this process (nothing changed).
    /// </summary>
    public bool MayHaveSucceeded { get; init; }
}
