namespace ChatScale.Testing;

/// <summary>
/// A test's external dependency (redis-server, Node.js, Chromium, ...) is not on this machine. Thrown with a one-line
/// message that names what was tried and the command that sets the machine up; it carries no stack trace, so a
/// missing dependency reads as one line per affected test instead of a page of Docker or process internals.
/// </summary>
public sealed class MissingTestDependencyException : Exception
{
    /// <summary>The command that installs every test dependency on a fresh machine (README, "Run the tests").</summary>
    public const string SetUpCommand = "./build.sh test";

    public MissingTestDependencyException(string message)
        : base($"{message} Set the machine up with `{SetUpCommand}` (README, \"Run the tests\").")
    {
    }

    public MissingTestDependencyException()
        : this("A test dependency is missing.")
    {
    }

    public MissingTestDependencyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Empty: where the fixture threw is not what the reader needs; the message says what is missing.</summary>
    public override string? StackTrace => string.Empty;
}
