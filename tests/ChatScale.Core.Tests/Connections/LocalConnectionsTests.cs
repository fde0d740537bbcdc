using System.Text;
using ChatScale.Connections;
using ChatScale.Core.Tests.TestSupport;

namespace ChatScale.Core.Tests.Connections;

public sealed class LocalConnectionsTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Deliver_UserWithTwoConnections_QueuesOnBoth()
    {
        using var connections = new LocalConnections(Opts.Create());
        var a = new RecordingTransport();
        var b = new RecordingTransport();
        connections.Add("alice", a);
        connections.Add("alice", b);

        var queued = connections.Deliver(["alice"], Encoding.UTF8.GetBytes("hi"));

        Assert.Equal(2, queued);
        await a.WaitForCountAsync(1);
        await b.WaitForCountAsync(1);
        Assert.Equal("hi", Encoding.UTF8.GetString(a.Frames[0]));
    }

    [Fact]
    public void Deliver_UserWithNoConnection_QueuesNothing()
    {
        using var connections = new LocalConnections(Opts.Create());
        connections.Add("alice", new RecordingTransport());

        Assert.Equal(0, connections.Deliver(["bob", "carol"], new byte[] { 1 }));
    }

    [Fact]
    public async Task Deliver_ManyFrames_ArriveInQueueOrderWithOneSenderAtATime()
    {
        using var connections = new LocalConnections(Opts.Create(o => o.SendQueueCapacity = 10_000));
        var transport = new RecordingTransport();
        connections.Add("alice", transport);

        for (var i = 0; i < 5_000; i++)
        {
            connections.Deliver(["alice"], BitConverter.GetBytes(i));
        }

        await transport.WaitForCountAsync(5_000);
        Assert.Equal(Enumerable.Range(0, 5_000), transport.Frames.Select(f => BitConverter.ToInt32(f)));
        Assert.False(transport.SawConcurrentSends);
    }

    [Fact]
    public async Task Deliver_ManyRecipients_ShareOneBufferNotCopies()
    {
        using var connections = new LocalConnections(Opts.Create());
        var transports = Enumerable.Range(0, 50).Select(_ => new RecordingTransport()).ToArray();
        for (var i = 0; i < transports.Length; i++)
        {
            connections.Add($"user-{i}", transports[i]);
        }

        var payload = new ReadOnlyMemory<byte>(Encoding.UTF8.GetBytes("{\"text\":\"shared\"}"));
        connections.Deliver(Enumerable.Range(0, 50).Select(i => $"user-{i}").ToArray(), payload);

        foreach (var t in transports)
        {
            await t.WaitForCountAsync(1);
            Assert.True(RecordingTransport.SameArray(payload, t.RawFrames[0]), "each recipient must get the caller's buffer, not a copy");
        }
    }

    [Fact]
    public async Task DeliverToAll_ReachesEveryConnection()
    {
        using var connections = new LocalConnections(Opts.Create());
        var transports = Enumerable.Range(0, 10).Select(_ => new RecordingTransport()).ToArray();
        for (var i = 0; i < transports.Length; i++)
        {
            connections.Add($"user-{i % 3}", transports[i]);
        }

        Assert.Equal(10, connections.DeliverToAll(new byte[] { 7 }));
        foreach (var t in transports)
        {
            await t.WaitForCountAsync(1);
        }
    }

    [Fact]
    public async Task SlowConsumer_DropOldest_DropsExactlyTheOverflowAndKeepsNewest()
    {
        const int capacity = 8;
        using var connections = new LocalConnections(Opts.Create(o =>
        {
            o.SendQueueCapacity = capacity;
            o.SlowConsumerPolicy = SlowConsumerPolicy.DropOldest;
        }));
        var slow = new RecordingTransport();
        var fast = new RecordingTransport();
        slow.Block();
        var slowConnection = connections.Add("slow", slow);
        connections.Add("fast", fast);

        // Frame 0 is taken by the writer loop and blocks in SendAsync; the next frames fill the queue.
        connections.Deliver(["slow", "fast"], BitConverter.GetBytes(0));
        Assert.True(await slow.WaitForSendAsync(Wait));
        for (var i = 1; i <= capacity + 5; i++)
        {
            connections.Deliver(["slow", "fast"], BitConverter.GetBytes(i));
            await fast.WaitForCountAsync(i + 1); // the fast client keeps up while the slow one is stuck
        }

        Assert.Equal(5, slowConnection.DroppedFrames);
        Assert.Equal(capacity, slowConnection.QueuedFrames);

        slow.Release();
        await slow.WaitForCountAsync(capacity + 1);
        var expected = new[] { 0 }.Concat(Enumerable.Range(6, capacity));
        Assert.Equal(expected, slow.Frames.Select(f => BitConverter.ToInt32(f)));
        Assert.Equal(Enumerable.Range(0, capacity + 6), fast.Frames.Select(f => BitConverter.ToInt32(f)));
        Assert.Equal(2, connections.Count);
    }

    [Fact]
    public async Task SlowConsumer_Close_FinishesTheFrameInFlightThenClosesWithPolicyViolation()
    {
        const int capacity = 4;
        using var connections = new LocalConnections(Opts.Create(o =>
        {
            o.SendQueueCapacity = capacity;
            o.SlowConsumerPolicy = SlowConsumerPolicy.Close;
        }));
        var slow = new RecordingTransport();
        var fast = new RecordingTransport();
        slow.Block();
        var slowConnection = connections.Add("slow", slow);
        connections.Add("fast", fast);

        connections.Deliver(["slow", "fast"], BitConverter.GetBytes(0));
        Assert.True(await slow.WaitForSendAsync(Wait));
        for (var i = 1; i <= capacity + 3; i++)
        {
            connections.Deliver(["slow", "fast"], BitConverter.GetBytes(i));
            await fast.WaitForCountAsync(i + 1);
        }

        // The overflow took the slow connection out at once: no more frames are accepted for it.
        Assert.False(connections.IsConnected("slow"));
        Assert.False(slowConnection.TryEnqueue(new byte[] { 1 }));
        Assert.Equal(1, connections.Count);
        Assert.Null(slow.ClosedWith);

        // The client reads again: the frame in flight completes, the queued ones are discarded, then 1008 follows.
        slow.Release();
        await slow.Closed.WaitAsync(Wait);
        await slowConnection.Completion.WaitAsync(Wait);
        Assert.Equal(ConnectionCloseStatus.PolicyViolation, slow.ClosedWith);
        Assert.Equal(ConnectionCloseStatus.PolicyViolation, slowConnection.CloseStatus);
        Assert.Equal([0], slow.Frames.Select(f => BitConverter.ToInt32(f)));
        Assert.Equal(Enumerable.Range(0, capacity + 4), fast.Frames.Select(f => BitConverter.ToInt32(f)));
    }

    [Fact]
    public async Task SlowConsumer_Close_ClientThatNeverReadsIsCutOffAfterTheCloseTimeout()
    {
        using var connections = new LocalConnections(Opts.Create(o =>
        {
            o.SendQueueCapacity = 2;
            o.SlowConsumerPolicy = SlowConsumerPolicy.Close;
            o.SlowConsumerCloseTimeout = TimeSpan.FromMilliseconds(200);
        }));
        var stuck = new RecordingTransport();
        stuck.Block();
        var connection = connections.Add("stuck", stuck);
        connections.Deliver(["stuck"], new byte[] { 0 });
        Assert.True(await stuck.WaitForSendAsync(Wait));
        for (var i = 1; i <= 3; i++)
        {
            connections.Deliver(["stuck"], new byte[] { (byte)i });
        }

        // The send never completes: after the timeout it is cancelled and the close is attempted.
        await connection.Completion.WaitAsync(Wait);
        Assert.Equal(ConnectionCloseStatus.PolicyViolation, stuck.ClosedWith);
        Assert.Empty(stuck.Frames);
    }

    [Fact]
    public async Task CloseAllAsync_DrainsQueuedFramesThenClosesWithGoingAway()
    {
        using var connections = new LocalConnections(Opts.Create());
        var transport = new RecordingTransport();
        transport.Block();
        connections.Add("alice", transport);
        for (var i = 0; i < 10; i++)
        {
            connections.Deliver(["alice"], BitConverter.GetBytes(i));
        }

        var closing = connections.CloseAllAsync(ConnectionCloseStatus.GoingAway, "shutting down", Wait);
        Assert.Equal(0, connections.Deliver(["alice"], BitConverter.GetBytes(99)));
        transport.Release();
        await closing.WaitAsync(Wait);

        Assert.Equal(Enumerable.Range(0, 10), transport.Frames.Select(f => BitConverter.ToInt32(f)));
        Assert.Equal(ConnectionCloseStatus.GoingAway, transport.ClosedWith);
        Assert.Equal(0, connections.Count);
    }

    [Fact]
    public async Task CloseAllAsync_StuckClient_IsClosedAfterTheDrainTimeout()
    {
        using var connections = new LocalConnections(Opts.Create());
        var stuck = new RecordingTransport();
        stuck.Block();
        connections.Add("alice", stuck);
        connections.Deliver(["alice"], new byte[] { 1 });
        Assert.True(await stuck.WaitForSendAsync(Wait));

        await connections.CloseAllAsync(ConnectionCloseStatus.GoingAway, "shutting down", TimeSpan.FromMilliseconds(50)).WaitAsync(Wait);

        Assert.Equal(ConnectionCloseStatus.GoingAway, stuck.ClosedWith);
        Assert.Empty(stuck.Frames);
    }

    [Fact]
    public async Task Abort_RemovesTheConnectionWithoutAClose()
    {
        using var connections = new LocalConnections(Opts.Create());
        var transport = new RecordingTransport();
        var connection = connections.Add("alice", transport);

        connection.Abort();
        await connection.Completion.WaitAsync(Wait);

        Assert.False(connections.IsConnected("alice"));
        Assert.Equal(0, connections.Count);
        Assert.Null(transport.ClosedWith);
        Assert.Empty(connections.GetConnections("alice"));
    }

    [Fact]
    public async Task SendFailure_RemovesTheConnection()
    {
        using var connections = new LocalConnections(Opts.Create());
        var broken = new RecordingTransport { FailWith = new IOException("socket reset") };
        var healthy = new RecordingTransport();
        var connection = connections.Add("alice", broken);
        connections.Add("alice", healthy);

        connections.Deliver(["alice"], new byte[] { 1 });
        await connection.Completion.WaitAsync(Wait);

        Assert.Single(connections.GetConnections("alice"));
        Assert.Equal(1, connections.Deliver(["alice"], new byte[] { 2 }));
        await healthy.WaitForCountAsync(2);
    }

    [Fact]
    public async Task ConcurrentConnectDisconnectDeliver_StableConnectionsGetEveryFrameOnceInOrder()
    {
        const int stableUsers = 20;
        const int frames = 2_000;
        using var connections = new LocalConnections(Opts.Create(o => o.SendQueueCapacity = frames + 10));
        var stable = Enumerable.Range(0, stableUsers).Select(_ => new RecordingTransport()).ToArray();
        for (var i = 0; i < stableUsers; i++)
        {
            connections.Add($"user-{i}", stable[i]);
        }

        var recipients = Enumerable.Range(0, stableUsers).Select(i => $"user-{i}").ToArray();
        using var stop = new CancellationTokenSource();

        // Churners connect and disconnect the same users (extra connections) and fresh users while frames flow.
        var churners = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                var user = n % 2 == 0 ? $"user-{(n + worker) % stableUsers}" : $"churn-{worker}-{n}";
                var c = connections.Add(user, new RecordingTransport());
                if (n % 3 == 0)
                {
                    await Task.Yield();
                }

                if (n % 2 == 0)
                {
                    c.Abort();
                }
                else
                {
                    await c.CloseAsync(ConnectionCloseStatus.NormalClosure, "bye", TimeSpan.Zero);
                }

                n++;
            }
        })).ToArray();

        // Two publishers each deliver their own increasing sequence, interleaved with each other.
        var publishers = Enumerable.Range(0, 2).Select(p => Task.Run(() =>
        {
            for (var i = 0; i < frames / 2; i++)
            {
                var frame = new byte[8];
                BitConverter.TryWriteBytes(frame, p);
                BitConverter.TryWriteBytes(frame.AsSpan(4), i);
                connections.Deliver(recipients, frame);
            }
        })).ToArray();

        await Task.WhenAll(publishers).WaitAsync(Wait);
        await stop.CancelAsync();
        await Task.WhenAll(churners).WaitAsync(Wait);

        foreach (var t in stable)
        {
            await t.WaitForCountAsync(frames);
            var received = t.Frames;
            Assert.Equal(frames, received.Count);
            foreach (var p in new[] { 0, 1 })
            {
                var sequence = received.Where(f => BitConverter.ToInt32(f) == p).Select(f => BitConverter.ToInt32(f, 4));
                Assert.Equal(Enumerable.Range(0, frames / 2), sequence);
            }
        }

        Assert.Equal(stableUsers, connections.Count);
    }
}
