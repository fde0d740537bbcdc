using System.Net;
using System.Net.Sockets;

namespace ChatScale.Redis.Tests.Infrastructure;

/// <summary>
/// A TCP proxy on loopback in front of a Redis server, to fail commands the way networks do: <see cref="StallReplies"/>
/// lets requests through (Redis runs them) but holds every reply until <see cref="Release"/> (so commands time out
/// after they ran); <see cref="CutAsync"/> drops every connection and refuses new ones until <see cref="Release"/>.
/// </summary>
public sealed class StallingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(TcpClient Client, TcpClient Server)> _pairs = [];
    private readonly Lock _gate = new();
    private readonly Task _accepting;
    private TaskCompletionSource _open = NewOpen();
    private volatile bool _refusing;

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

    /// <summary>Drops every connection and refuses new ones until <see cref="Release"/>.</summary>
    public Task CutAsync()
    {
        _refusing = true;
        lock (_gate)
        {
            foreach (var (client, server) in _pairs)
            {
                client.Client.Close(0);
                server.Client.Close(0);
            }

            _pairs.Clear();
        }

        return Task.CompletedTask;
    }

    /// <summary>Lets held replies through and accepts connections again.</summary>
    public void Release()
    {
        _refusing = false;
        lock (_gate)
        {
            _open.TrySetResult();
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

            lock (_gate)
            {
                _pairs.Add((client, server));
            }

            _ = PumpAsync(client.GetStream(), server.GetStream(), holdable: false);
            _ = PumpAsync(server.GetStream(), client.GetStream(), holdable: true);
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to, bool holdable)
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

                if (holdable)
                {
                    Task open;
                    lock (_gate)
                    {
                        open = _open.Task;
                    }

                    await open.WaitAsync(_stop.Token);
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
}
