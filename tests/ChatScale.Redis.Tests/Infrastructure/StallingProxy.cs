using System.Net;
using System.Net.Sockets;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on loopback in front of a Redis server, to fail commands the way networks do: <see cref="StallReplies"/>
/// lets requests through (Redis runs them) but holds every reply until <see cref="Release"/> (so commands time out
/// after they ran); <see cref="HoldRepliesAfter"/> does the same for one connection only, from the request that
/// carries chosen bytes on (other connections, such as the client's subscription, go on, so a message published after
/// that command can overtake its reply, as a slow reply on a busy link lets it); <see cref="Stall"/> holds both
/// directions, as a congested link or a starved process would (the bytes wait, and arrive late on release);
/// <see cref="CutAsync"/> drops every connection and refuses new ones until <see cref="Release"/>.
/// </summary>
public sealed class StallingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Link> _links = [];
    private readonly Lock _gate = new();
    private readonly Task _accepting;
    private TaskCompletionSource _open = NewOpen();
    private TaskCompletionSource _requestsOpen = NewOpen();
    private TaskCompletionSource _linkHoldsOpen = NewOpen();
    private byte[]? _marker;
    private TaskCompletionSource? _replyHeld;
    private volatile bool _refusing;

    /// <summary>A proxy in front of the Redis at <paramref name="redisConnectionString"/> (<c>host:port</c>).</summary>
    public StallingProxy(string redisConnectionString)
        : this(StackExchange.Redis.ConfigurationOptions.Parse(redisConnectionString).EndPoints[0] switch
        {
            IPEndPoint ip => ip.Port,
            DnsEndPoint dns => dns.Port,
            var other => throw new ArgumentException($"Unexpected endpoint {other}", nameof(redisConnectionString)),
        })
    {
    }

    public StallingProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>From now on, requests still reach Redis but no reply comes back until <see cref="Release"/>.</summary>
    public void StallReplies()
    {
        lock (_gate)
        {
            if (_open.Task.IsCompleted)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>
    /// Arms the proxy: the next request containing <paramref name="marker"/> reaches Redis and runs, and the replies of
    /// its connection are held from then on, until <see cref="Release"/>. The task completes when Redis has answered
    /// that request (its reply reached the proxy and is held).
    /// </summary>
    public Task HoldRepliesAfter(byte[] marker)
    {
        lock (_gate)
        {
            if (_linkHoldsOpen.Task.IsCompleted)
            {
                _linkHoldsOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            _marker = marker;
            _replyHeld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _replyHeld.Task;
        }
    }

    /// <summary>From now on nothing passes in either direction until <see cref="Release"/>: requests wait too.</summary>
    public void Stall()
    {
        StallReplies();
        lock (_gate)
        {
            if (_requestsOpen.Task.IsCompleted)
            {
                _requestsOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Drops every connection and refuses new ones until <see cref="Release"/>.</summary>
    public Task CutAsync()
    {
        _refusing = true;
        lock (_gate)
        {
            foreach (var link in _links)
            {
                link.Client.Client.Close(0);
                link.Server.Client.Close(0);
            }

            _links.Clear();
        }

        return Task.CompletedTask;
    }

    /// <summary>Lets held requests and replies through and accepts connections again.</summary>
    public void Release()
    {
        _refusing = false;
        lock (_gate)
        {
            _requestsOpen.TrySetResult();
            _open.TrySetResult();
            _marker = null;
            foreach (var link in _links)
            {
                link.Holding = false;
            }

            _linkHoldsOpen.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Release();
        await CutAsync();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private static TaskCompletionSource NewOpen()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            if (_refusing)
            {
                client.Client.Close(0);
                continue;
            }

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

            var link = new Link(client, server);
            lock (_gate)
            {
                _links.Add(link);
            }

            _ = PumpAsync(client.GetStream(), server.GetStream(), link, replies: false);
            _ = PumpAsync(server.GetStream(), client.GetStream(), link, replies: true);
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, Link link, bool replies)
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

                // Bytes read just before a stall began are held too, until the release.
                Task open;
                Task? linkOpen = null;
                lock (_gate)
                {
                    open = replies ? _open.Task : _requestsOpen.Task;
                    if (!replies && _marker is not null && buffer.AsSpan(0, read).IndexOf(_marker) >= 0)
                    {
                        // Held before the request leaves, so its reply cannot slip through.
                        _marker = null;
                        link.Holding = true;
                        link.HeldSignal = _replyHeld;
                    }
                    else if (replies && link.Holding)
                    {
                        link.HeldSignal?.TrySetResult();
                        link.HeldSignal = null;
                        linkOpen = _linkHoldsOpen.Task;
                    }
                }

                await open.WaitAsync(_stop.Token);
                if (linkOpen is not null)
                {
                    await linkOpen.WaitAsync(_stop.Token);
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

    private sealed class Link(TcpClient client, TcpClient server)
    {
        public TcpClient Client { get; } = client;

        public TcpClient Server { get; } = server;

        public bool Holding { get; set; }

        public TaskCompletionSource? HeldSignal { get; set; }
    }
}
