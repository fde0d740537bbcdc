namespace ChatScale.Backplane;

/// <summary>
/// Bytes received from the backplane are not a valid envelope: truncated, oversized, of an unknown version or kind,
/// or with invalid UTF-8. The listener counts, logs and drops such input; it never stops the node.
/// </summary>
public sealed class EnvelopeFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public EnvelopeFormatException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">What is wrong with the input.</param>
    public EnvelopeFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    /// <param name="message">What is wrong with the input.</param>
    /// <param name="innerException">The cause.</param>
    public EnvelopeFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
