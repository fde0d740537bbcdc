using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;

namespace ChatScale.LoadTest;

/// <summary>
/// One listening user: a raw <see cref="ClientWebSocket"/> for both systems (for SignalR it speaks the JSON hub
/// protocol: handshake, then records ending in 0x1E), so the client-side cost is the same code for both.
/// </summary>
internal sealed class LoadClient : IAsyncDisposable
{
    private static readonly byte[] Handshake = Encoding.UTF8.GetBytes("{\"protocol\":\"json\",\"version\":1}\u001e");
    private readonly ClientWebSocket _socket = new();
    private readonly bool _signalR;
    private Task? _loop;

    private LoadClient(int index, bool signalR)
    {
        Index = index;
        _signalR = signalR;
    }

    public int Index { get; }

    public volatile bool Probed;

    public Recorder? Recorder { get; set; }

    public bool Faulted { get; private set; }

    /// <summary>When the handshake completed (<see cref="Stopwatch"/> timestamp): a server's keep-alive timers start then.</summary>
    public long ConnectedAt { get; private set; }

    public WebSocketState State => _socket.State;

    /// <summary>A shared handler; with <paramref name="sourceAddresses"/>, connections round-robin over those local addresses.</summary>
    public static HttpMessageInvoker CreateInvoker(IReadOnlyList<IPAddress>? sourceAddresses = null)
    {
        var handler = new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        if (sourceAddresses is { Count: > 0 })
        {
            var next = -1;
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                var local = sourceAddresses[(int)((uint)Interlocked.Increment(ref next) % (uint)sourceAddresses.Count)];
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(local, 0));
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        return new HttpMessageInvoker(handler);
    }

    public static async Task<LoadClient> ConnectAsync(int index, Uri uri, bool signalR, HttpMessageInvoker invoker, int receiveBuffer, CancellationToken cancellationToken)
    {
        var client = new LoadClient(index, signalR);
        client._socket.Options.SetRequestHeader(HeaderAuthHandler.UserHeader, Groups.UserId(index));
        client._socket.Options.KeepAliveInterval = TimeSpan.Zero;
        client._socket.Options.SetBuffer(receiveBuffer, 256);
        await client._socket.ConnectAsync(uri, invoker, cancellationToken);
        client.ConnectedAt = Stopwatch.GetTimestamp();
        if (signalR)
        {
            await client._socket.SendAsync(Handshake, WebSocketMessageType.Text, true, cancellationToken);
        }

        client._loop = Task.Run(() => client.ReceiveLoopAsync(receiveBuffer), CancellationToken.None);
        return client;
    }

    private async Task ReceiveLoopAsync(int bufferSize)
    {
        var buffer = new byte[bufferSize];
        var pending = new ArrayBufferWriter<byte>(bufferSize);
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                var now = Stopwatch.GetTimestamp();
                if (!_signalR && result.EndOfMessage && pending.WrittenCount == 0)
                {
                    OnPayload(buffer.AsSpan(0, result.Count), now);
                    continue;
                }

                pending.Write(buffer.AsSpan(0, result.Count));
                if (!_signalR)
                {
                    if (result.EndOfMessage)
                    {
                        OnPayload(pending.WrittenSpan, now);
                        pending.ResetWrittenCount();
                    }

                    continue;
                }

                // SignalR: every complete record (ends with 0x1E); keep a trailing partial record for the next read.
                var span = pending.WrittenSpan;
                var end = span.LastIndexOf((byte)0x1e);
                if (end < 0)
                {
                    continue;
                }

                var records = span[..end];
                while (true)
                {
                    var cut = records.IndexOf((byte)0x1e);
                    OnPayload(cut < 0 ? records : records[..cut], now);
                    if (cut < 0)
                    {
                        break;
                    }

                    records = records[(cut + 1)..];
                }

                var rest = span[(end + 1)..].ToArray();
                pending.ResetWrittenCount();
                pending.Write(rest);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            Faulted = true;
        }
    }

    private void OnPayload(ReadOnlySpan<byte> payload, long now)
    {
        // {"s":SEQ,"t":TIMESTAMP,...}; a SignalR record wraps it in {"type":1,"target":"m","arguments":[...]}.
        var s = payload.IndexOf("\"s\":"u8);
        if (s < 0)
        {
            return;
        }

        if (!Utf8Parser.TryParse(payload[(s + 4)..], out long seq, out _))
        {
            return;
        }

        if (seq < 0)
        {
            Probed = true;
            Recorder?.OnProbe();
            return;
        }

        var t = payload.IndexOf("\"t\":"u8);
        if (t >= 0 && Utf8Parser.TryParse(payload[(t + 4)..], out long sent, out _))
        {
            Recorder?.OnMessage(seq, sent, now, Index);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, string.Empty, timeout.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }

        _socket.Abort();
        if (_loop is not null)
        {
            await _loop;
        }

        _socket.Dispose();
    }
}
