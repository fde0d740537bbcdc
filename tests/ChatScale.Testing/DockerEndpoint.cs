using System.Net.Sockets;

namespace ChatScale.Testing;

/// <summary>
/// Whether a Docker engine answers where Testcontainers would look (<c>DOCKER_HOST</c>, else the default Unix socket),
/// checked before Testcontainers is tried so that its absence is one line, not Docker.DotNet's stack trace.
/// </summary>
public static class DockerEndpoint
{
    private const string DefaultSocket = "/var/run/docker.sock";

    /// <summary>Where the engine was looked for, for messages.</summary>
    public static string Describe() =>
        Environment.GetEnvironmentVariable("DOCKER_HOST") is { Length: > 0 } host ? $"DOCKER_HOST={host}" : $"unix://{DefaultSocket}";

    /// <summary>True when a Docker endpoint accepts a connection.</summary>
    public static async Task<bool> IsAvailableAsync()
    {
        var host = Environment.GetEnvironmentVariable("DOCKER_HOST");
        if (host is { Length: > 0 } && !host.StartsWith("unix://", StringComparison.Ordinal))
        {
            // A TCP or named-pipe endpoint: let Testcontainers try it; only the default Unix socket is probed here.
            return true;
        }

        var path = host is { Length: > 0 } ? host["unix://".Length..] : DefaultSocket;
        if (!File.Exists(path))
        {
            return false;
        }

        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), timeout.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            return false;
        }
    }
}
