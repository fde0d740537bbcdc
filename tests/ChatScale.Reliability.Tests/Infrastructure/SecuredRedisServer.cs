using System.Diagnostics;
using System.Globalization;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>
/// A <c>redis-server</c> with a password and, optionally, TLS only (<c>--port 0 --tls-port</c>) using a CA and a
/// server certificate generated with <c>openssl</c> at test time. Readiness is read from the server's log, since
/// an unauthenticated PING (what <see cref="RedisServer"/> waits for) is refused here.
/// </summary>
internal sealed class SecuredRedisServer : IAsyncDisposable
{
    private readonly Process _process;

    private SecuredRedisServer(Process process, string directory, int port, string password, bool tls)
    {
        _process = process;
        Directory = directory;
        Port = port;
        Password = password;
        Tls = tls;
    }

    public string Directory { get; }

    public int Port { get; }

    public string Password { get; }

    public bool Tls { get; }

    public string CaCertificatePath => Path.Combine(Directory, "ca.crt");

    public static async Task<SecuredRedisServer> StartAsync(string password, bool tls)
    {
        var binary = RedisServer.FindOnPath("redis-server") ?? throw new InvalidOperationException("redis-server is not on PATH (apt-get install redis-server).");
        var directory = System.IO.Directory.CreateTempSubdirectory("chatscale-secured-redis-").FullName;
        var port = RedisServer.FreePort();
        var args = new List<string>
        {
            "--bind", "127.0.0.1", "--save", string.Empty, "--appendonly", "no", "--daemonize", "no",
            "--dir", directory, "--logfile", Path.Combine(directory, "redis.log"), "--requirepass", password,
        };
        if (tls)
        {
            await CreateCertificatesAsync(directory);
            args.AddRange(
            [
                "--port", "0", "--tls-port", port.ToString(CultureInfo.InvariantCulture),
                "--tls-cert-file", Path.Combine(directory, "server.crt"), "--tls-key-file", Path.Combine(directory, "server.key"),
                "--tls-ca-cert-file", Path.Combine(directory, "ca.crt"), "--tls-auth-clients", "no",
            ]);
        }
        else
        {
            args.AddRange(["--port", port.ToString(CultureInfo.InvariantCulture)]);
        }

        var info = new ProcessStartInfo(binary) { UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("Could not start redis-server.");
        var server = new SecuredRedisServer(process, directory, port, password, tls);
        var log = Path.Combine(directory, "redis.log");
        await Eventually.TrueAsync(
            () => process.HasExited || (File.Exists(log) && File.ReadAllText(log).Contains("Ready to accept connections", StringComparison.Ordinal)),
            "redis-server ready");
        if (process.HasExited)
        {
            throw new InvalidOperationException($"redis-server exited: {(File.Exists(log) ? File.ReadAllText(log) : "(no log)")}");
        }

        return server;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }

    private static async Task CreateCertificatesAsync(string directory)
    {
        var openssl = RedisServer.FindOnPath("openssl") ?? throw new InvalidOperationException("openssl is not on PATH (apt-get install openssl).");
        await File.WriteAllTextAsync(Path.Combine(directory, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
        await RunAsync(openssl, directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=ChatScale test CA");
        await RunAsync(openssl, directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
        await RunAsync(openssl, directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext");
    }

    private static async Task RunAsync(string file, string directory, params string[] args)
    {
        var info = new ProcessStartInfo(file) { UseShellExecute = false, WorkingDirectory = directory, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {file}.");
        var stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {await stderr}");
        }
    }
}
