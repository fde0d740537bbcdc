namespace ChatScale;

/// <summary>
/// The backplane (for example Redis) could not be reached, so nothing was published or enqueued. Safe to retry; the
/// background dispatcher treats it as a transient failure.
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
}
