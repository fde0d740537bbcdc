using System.Buffers.Binary;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using ChatScale.Reliability.Tests.Infrastructure;
using Xunit.Abstractions;

namespace ChatScale.Reliability.Tests.Faults;

/// <summary>
/// One client that never reads its socket, among 1,000 that read as fast as they can, all on one node.
/// </summary>
/// <remarks>
/// Figures: 1,000 fast ClientWebSockets; SendQueueCapacity 64; each measured run broadcasts 50 frames, one every
/// 20 ms, to every connection; the slow client (4 KB TCP receive buffer) is first sent 2,000 distinct 64 KB frames
/// (128 MB in total) so its TCP buffers and its queue are full before its run.
/// </remarks>
public sealed class SlowConsumerTests(ITestOutputHelper output)
{
    private const int FastClients = 1000;
    private const int Capacity = 64;
    private const int FramesPerRun = 50;
    private const int BigFrames = 2000;
    private const int BigFrameBytes = 64 * 1024;

    [Fact]
    public async Task A_client_that_never_reads_costs_bounded_memory_and_does_not_slow_the_fast_clients_down_under_drop_oldest()
    {
        await using var node = await ChatHost.StartAsync(chatScale: o =>
        {
            o.SendQueueCapacity = Capacity;
            o.SlowConsumerPolicy = SlowConsumerPolicy.DropOldest;
        });
        using var depth = new GaugeWatcher("chatscale.send_queue.depth");

        var fast = new FastClient[FastClients];
        using (var gate = new SemaphoreSlim(50))
        {
            await Task.WhenAll(Enumerable.Range(0, FastClients).Select(async i =>
            {
                await gate.WaitAsync();
                try
                {
                    fast[i] = new FastClient(await node.ConnectAsync($"fast-{i}"));
                }
                finally
                {
                    gate.Release();
                }
            }));
        }

        await Eventually.TrueAsync(() => node.Connections.Count == FastClients, "1,000 connections on the node");

        await RunAsync(node, fast, run: 0); // Warm-up (JIT, pools); not measured.
        var without = await RunAsync(node, fast, run: 1);

        using var slow = await RawWebSocketClient.ConnectAsync(node.WebSocketUri, "slow");
        await Eventually.TrueAsync(() => node.Connections.IsConnected("slow"), "the slow client connected");
        var slowConnection = node.Connections.GetConnections("slow")[0];

        GC.Collect();
        GC.WaitForPendingFinalizers();
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        for (var i = 0; i < BigFrames; i++)
        {
            // Distinct arrays: an unbounded queue would keep all 128 MB alive.
            var frame = new byte[BigFrameBytes];
            frame.AsSpan().Fill((byte)'x');
            "\"x\":\""u8.CopyTo(frame.AsSpan(1));
            frame[0] = (byte)'{';
            frame[^2] = (byte)'"';
            frame[^1] = (byte)'}';
            await node.Broadcaster.PublishAsync(["slow"], frame);
        }

        var heapAfter = GC.GetTotalMemory(forceFullCollection: true);
        var heapGrowth = heapAfter - heapBefore;
        Assert.True(slowConnection.QueuedFrames <= Capacity, $"queue depth {slowConnection.QueuedFrames} > {Capacity}");
        var droppedBeforeRun = slowConnection.DroppedFrames;

        var with = await RunAsync(node, fast, run: 2);
        var droppedDuringRun = slowConnection.DroppedFrames - droppedBeforeRun;

        output.WriteLine($"fast clients: {FastClients}, frames per run: {FramesPerRun}, capacity: {Capacity}");
        output.WriteLine($"p50/p99 without slow client: {without.P50:F1}/{without.P99:F1} ms; with: {with.P50:F1}/{with.P99:F1} ms; p99 ratio {with.P99 / without.P99:F2}");
        output.WriteLine($"slow client: {BigFrames} x {BigFrameBytes / 1024} KB pushed ({BigFrames * (long)BigFrameBytes / (1024 * 1024)} MB); managed heap grew {heapGrowth / (1024.0 * 1024):F1} MB; queue depth {slowConnection.QueuedFrames}; gauge max {depth.Max}; dropped {droppedBeforeRun} before the run, {droppedDuringRun} during it");

        // Bounded: the queue holds at most Capacity frames (4 MB here), whatever was pushed (128 MB).
        Assert.True(heapGrowth < 32L * 1024 * 1024, $"managed heap grew {heapGrowth} bytes");
        Assert.True(depth.Max <= FastClients * (long)Capacity + Capacity, $"gauge {depth.Max}");
        Assert.True(droppedBeforeRun >= BigFrames - Capacity - 200, $"only {droppedBeforeRun} drops counted");
        Assert.True(droppedDuringRun > 0, "no drops counted while the slow client's queue was full");

        // Fast clients are not held back: p99 within 2x of the run without the slow client. The baseline is floored
        // at 25 ms so that scheduler noise on a shared 2-core machine cannot fail a ratio of two tiny numbers.
        Assert.True(with.P99 <= 2 * Math.Max(without.P99, 25), $"p99 {with.P99:F1} ms with the slow client vs {without.P99:F1} ms without");
        Assert.True(node.Connections.IsConnected("slow"), "drop-oldest keeps the slow client connected");

        await Task.WhenAll(fast.Select(f => f.DisposeAsync().AsTask()));
    }

    [Fact]
    public async Task Under_the_close_policy_the_server_closes_a_client_that_never_reads_and_the_others_keep_receiving()
    {
        await using var node = await ChatHost.StartAsync(chatScale: o =>
        {
            o.SendQueueCapacity = 16;
            o.SlowConsumerPolicy = SlowConsumerPolicy.Close;
        });
        var reader = await node.ConnectAsync("reader");
        using var slow = await RawWebSocketClient.ConnectAsync(node.WebSocketUri, "slow");
        var slowConnection = await OverflowUnderClosePolicyAsync(node);

        Assert.Equal(Connections.ConnectionCloseStatus.PolicyViolation, slowConnection.CloseStatus);
        await node.Broadcaster.PublishAsync(["reader"], "{\"still\":\"here\"}"u8.ToArray());
        Assert.Equal("{\"still\":\"here\"}", await reader.ReceiveTextAsync());
        await Eventually.TrueAsync(() => node.Connections.Count == 1, "only the reader left on the node");
        await reader.CloseQuietlyAsync();
    }

    /// <summary>
    /// LIBRARY BUG (fails until src/ is fixed): the close policy cancels the writer's in-flight send, which aborts the
    /// WebSocket, so a client whose TCP window is full never gets the 1008 close frame: when it reads again it finds
    /// the connection reset. The close status should follow the frame in flight (bounded by a deadline).
    /// </summary>
    [Fact]
    public async Task A_stalled_client_closed_under_the_close_policy_finds_a_1008_close_frame_when_it_reads_again()
    {
        await using var node = await ChatHost.StartAsync(chatScale: o =>
        {
            o.SendQueueCapacity = 16;
            o.SlowConsumerPolicy = SlowConsumerPolicy.Close;
        });
        using var slow = await RawWebSocketClient.ConnectAsync(node.WebSocketUri, "slow");
        await OverflowUnderClosePolicyAsync(node);

        var (status, frames) = await slow.ReadUntilCloseAsync(TimeSpan.FromSeconds(30));
        output.WriteLine($"the slow client read {frames} data frames, then close status {status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none (connection reset without a close frame)"}");
        Assert.Equal(1008, status);
    }

    // Fills the slow client's TCP path one frame at a time, until the writer stays stuck in a send (the queue stops
    // draining), as it is for a real client that stopped reading; then overflows the queue until the server closes it.
    private async Task<Connections.ClientConnection> OverflowUnderClosePolicyAsync(ChatHost node)
    {
        await Eventually.TrueAsync(() => node.Connections.IsConnected("slow"), "the slow client connected");
        var slowConnection = node.Connections.GetConnections("slow")[0];
        var pushed = 0;
        var stuck = false;
        while (!stuck && pushed < BigFrames)
        {
            await node.Broadcaster.PublishAsync(["slow"], BigFrame());
            pushed++;
            var wait = Stopwatch.StartNew();
            while (slowConnection.QueuedFrames > 0 && wait.Elapsed < TimeSpan.FromMilliseconds(500))
            {
                await Task.Delay(10);
            }

            stuck = slowConnection.QueuedFrames > 0;
        }

        Assert.True(stuck, "the writer never blocked");
        var inFlight = pushed;
        while (node.Connections.IsConnected("slow") && pushed < BigFrames)
        {
            await node.Broadcaster.PublishAsync(["slow"], BigFrame());
            pushed++;
        }

        output.WriteLine($"writer blocked in a send after {inFlight} x 64 KB frames; slow client closed by the server after {pushed}");
        Assert.False(node.Connections.IsConnected("slow"), $"still connected after {pushed} frames");
        return slowConnection;
    }

    private static byte[] BigFrame()
    {
        var frame = new byte[BigFrameBytes];
        frame.AsSpan().Fill((byte)' ');
        frame[0] = (byte)'{';
        frame[^1] = (byte)'}';
        return frame;
    }

    private static async Task<(double P50, double P99)> RunAsync(ChatHost node, FastClient[] clients, int run)
    {
        foreach (var client in clients)
        {
            client.Begin(run);
        }

        for (var i = 0; i < FramesPerRun; i++)
        {
            var text = $"{{\"r\":{run},\"t\":{Stopwatch.GetTimestamp()}}}";
            var bytes = System.Text.Encoding.ASCII.GetBytes(text);
            await node.Broadcaster.PublishToAllAsync(bytes);
            await Task.Delay(20);
        }

        await Eventually.TrueAsync(() => clients.All(c => c.Received(run) >= FramesPerRun), $"run {run}: every fast client got {FramesPerRun} frames", TimeSpan.FromSeconds(60));
        var all = clients.SelectMany(c => c.Latencies(run)).Order().ToArray();
        return (all[(int)(all.Length * 0.50)], all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))]);
    }

    /// <summary>Reads as fast as it can and records, per run, the latency from publish to receive.</summary>
    private sealed class FastClient : IAsyncDisposable
    {
        private readonly ClientWebSocket _socket;
        private readonly Task _loop;
        private readonly object _gate = new();
        private readonly List<double> _latencies = [];
        private int _run = -1;
        private int _received;

        public FastClient(ClientWebSocket socket)
        {
            _socket = socket;
            _loop = Task.Run(ReadAsync);
        }

        public void Begin(int run)
        {
            lock (_gate)
            {
                _run = run;
                _received = 0;
                _latencies.Clear();
            }
        }

        public int Received(int run)
        {
            lock (_gate)
            {
                return _run == run ? _received : 0;
            }
        }

        public double[] Latencies(int run)
        {
            lock (_gate)
            {
                return _run == run ? [.. _latencies] : [];
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _socket.CloseQuietlyAsync();
            await _loop;
        }

        private async Task ReadAsync()
        {
            var buffer = new byte[1024];
            try
            {
                while (true)
                {
                    var result = await _socket.ReceiveAsync(buffer, CancellationToken.None);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    var now = Stopwatch.GetTimestamp();
                    var reader = new System.Text.Json.Utf8JsonReader(buffer.AsSpan(0, result.Count));
                    long run = -1, sent = 0;
                    while (reader.Read())
                    {
                        if (reader.TokenType == System.Text.Json.JsonTokenType.PropertyName)
                        {
                            var name = reader.GetString();
                            reader.Read();
                            if (name == "r")
                            {
                                run = reader.GetInt64();
                            }
                            else if (name == "t")
                            {
                                sent = reader.GetInt64();
                            }
                        }
                    }

                    lock (_gate)
                    {
                        if (run == _run)
                        {
                            _received++;
                            _latencies.Add(Stopwatch.GetElapsedTime(sent, now).TotalMilliseconds);
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or OperationCanceledException)
            {
                // Closed by the test.
            }
        }
    }

    /// <summary>Observes one observable gauge of <c>Meter("ChatScale")</c> and keeps the largest value seen.</summary>
    private sealed class GaugeWatcher : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly Timer _timer;
        private long _max;

        public GaugeWatcher(string instrument)
        {
            _listener.InstrumentPublished = (i, l) =>
            {
                if (i.Meter.Name == "ChatScale" && i.Name == instrument)
                {
                    l.EnableMeasurementEvents(i);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => InterlockedMax(value));
            _listener.SetMeasurementEventCallback<int>((_, value, _, _) => InterlockedMax(value));
            _listener.Start();
            _timer = new Timer(_ => _listener.RecordObservableInstruments(), null, 0, 50);
        }

        public long Max => Interlocked.Read(ref _max);

        public void Dispose()
        {
            _timer.Dispose();
            _listener.Dispose();
        }

        private void InterlockedMax(long value)
        {
            long current;
            while (value > (current = Interlocked.Read(ref _max)) && Interlocked.CompareExchange(ref _max, value, current) != current)
            {
            }
        }
    }
}
