using System.Net;
using System.Net.Sockets;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on loopback in front of a Redis server that holds the replies of one connection, from one chosen
/// command on: <see cref="HoldRepliesAfter"/> names bytes of a request (a key, say); the request that carries them
/// reaches Redis and runs at once, but its reply and every later one on that connection wait until
/// <see cref="Release"/>. Other connections (the subscription connection of the same client) are not held, so a
/// message published after the command can overtake its reply, as a slow reply on a busy link lets it.
/// </summary>
public sealed class ReplyHoldingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _sockets = [];
    private readonly Lock _gate = new();
    private readonly Task _accepting;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private byte[]? _marker;
    private TaskCompletionSource? _replyHeld;

    /// <summary>A proxy in front of the Redis at <paramref name="redisConnectionString"/> (<c>host:port</c>).</summary>
    public ReplyHoldingProxy(string redisConnectionString)
    {
        _targetPort = StackExchange.Redis.ConfigurationOptions.Parse(redisConnectionString).EndPoints[0] switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            var other => throw new ArgumentException($"Unexpected endpoint {other}", nameof(redisConnectionString)),
        };
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string ConnectionString => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>
    /// Arms the proxy: the next request containing <paramref name="marker"/> runs, and the replies of its connection
    /// are held from then on. The task completes when Redis has answered it (its reply reached the proxy and is held).
    /// </summary>
    public Task HoldRepliesAfter(byte[] marker)
    {
        lock (_gate)
        {
            _marker = marker;
            _replyHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _replyHeld.Task;
        }
    }

    /// <summary>Lets every held reply through; nothing is held again.</summary>
    public void Release() => _released.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Release();
        lock (_gate)
        {
            foreach (var socket in _sockets)
            {
                socket.Client.Close(0);
            }
        }

        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            var server = new TcpClient();
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
            }
            catch (SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }

            lock (_gate)
            {
                _sockets.Add(client);
                _sockets.Add(server);
            }

            var pair = new Pair();
            _ = PumpRequestsAsync(client.GetStream(), server.GetStream(), pair);
            _ = PumpRepliesAsync(server.GetStream(), client.GetStream(), pair);
        }
    }

    private async Task PumpRequestsAsync(NetworkStream from, NetworkStream to, Pair pair)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                lock (_gate)
                {
                    // Held before the request leaves, so its reply cannot slip through.
                    if (_marker is not null && buffer.AsSpan(0, read).IndexOf(_marker) >= 0)
                    {
                        _marker = null;
                        pair.HeldSignal = _replyHeld;
                        pair.Holding = true;
                    }
                }

                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            from.Socket.Close(0);
            to.Socket.Close(0);
        }
    }

    private async Task PumpRepliesAsync(NetworkStream from, NetworkStream to, Pair pair)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                TaskCompletionSource? signal;
                bool holding;
                lock (_gate)
                {
                    holding = pair.Holding;
                    signal = pair.HeldSignal;
                    pair.HeldSignal = null;
                }

                if (holding)
                {
                    signal?.TrySetResult();
                    await _released.Task.WaitAsync(_stop.Token);
                }

                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            from.Socket.Close(0);
            to.Socket.Close(0);
        }
    }

    private sealed class Pair
    {
        public bool Holding { get; set; }

        public TaskCompletionSource? HeldSignal { get; set; }
    }
}
