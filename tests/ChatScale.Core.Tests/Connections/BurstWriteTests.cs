using ChatScale.Backplane;
using ChatScale.Connections;
using ChatScale.Core.Tests.TestSupport;

namespace ChatScale.Core.Tests.Connections;

/// <summary>
/// The write path schedules connections, not frames: whatever is queued while a send is in flight goes to the
/// transport as one burst (one <see cref="IConnectionTransport.SendBatchAsync"/>, one flush), in queue order.
/// </summary>
public sealed class BurstWriteTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Frames_queued_while_a_send_is_in_flight_go_out_as_one_burst_in_order()
    {
        using var connections = new LocalConnections(Opts.Create(o => o.SendQueueCapacity = 256));
        var transport = new BatchRecordingTransport();
        transport.Block();
        connections.Add("alice", transport);

        connections.Deliver(["alice"], BitConverter.GetBytes(0));
        Assert.True(await transport.Entered.WaitAsync(Wait));
        for (var i = 1; i <= 40; i++)
        {
            connections.Deliver(["alice"], BitConverter.GetBytes(i));
        }

        transport.Release();
        await transport.WaitForFramesAsync(41);

        Assert.Equal([1, 40], transport.BatchSizes);
        Assert.Equal(Enumerable.Range(0, 41), transport.Frames.Select(f => BitConverter.ToInt32(f)));
    }

    [Fact]
    public async Task A_burst_is_bounded_in_frames_so_the_rest_follows_in_the_next_burst()
    {
        using var connections = new LocalConnections(Opts.Create(o => o.SendQueueCapacity = 1000));
        var transport = new BatchRecordingTransport();
        transport.Block();
        connections.Add("alice", transport);

        connections.Deliver(["alice"], BitConverter.GetBytes(0));
        Assert.True(await transport.Entered.WaitAsync(Wait));
        for (var i = 1; i <= 200; i++)
        {
            connections.Deliver(["alice"], BitConverter.GetBytes(i));
        }

        transport.Release();
        await transport.WaitForFramesAsync(201);

        Assert.All(transport.BatchSizes, size => Assert.InRange(size, 1, 64));
        Assert.Equal(201, transport.BatchSizes.Sum());
        Assert.Equal(Enumerable.Range(0, 201), transport.Frames.Select(f => BitConverter.ToInt32(f)));
    }

    [Fact]
    public async Task An_idle_connection_that_gets_a_frame_again_is_scheduled_again()
    {
        using var connections = new LocalConnections(Opts.Create());
        var transport = new BatchRecordingTransport();
        connections.Add("alice", transport);

        for (var i = 0; i < 3; i++)
        {
            connections.Deliver(["alice"], BitConverter.GetBytes(i));
            await transport.WaitForFramesAsync(i + 1);
        }

        Assert.Equal([1, 1, 1], transport.BatchSizes);
        Assert.Equal(0, connections.GetConnections("alice")[0].QueuedFrames);
    }

    [Fact]
    public void Envelopes_delivered_as_one_batch_reach_each_connection_in_one_burst_written_on_the_calling_thread()
    {
        using var connections = new LocalConnections(Opts.Create());
        var alice = new BatchRecordingTransport();
        var bob = new BatchRecordingTransport();
        connections.Add("alice", alice);
        connections.Add("bob", bob);
        var envelopes = Enumerable.Range(0, 10).Select(i => Envelope(i, "alice", "bob")).ToArray();

        Assert.Equal(20, connections.Deliver(envelopes));

        // Both transports complete at once, so the writers ran before Deliver returned, on this thread.
        foreach (var transport in new[] { alice, bob })
        {
            Assert.Equal([10], transport.BatchSizes);
            Assert.Equal(Enumerable.Range(0, 10), transport.Frames.Select(f => BitConverter.ToInt32(f)));
            Assert.Equal([Environment.CurrentManagedThreadId], transport.Threads);
        }
    }

    [Fact]
    public async Task A_batch_larger_than_the_queue_does_not_make_a_reading_client_a_slow_consumer()
    {
        using var connections = new LocalConnections(Opts.Create(o =>
        {
            o.SendQueueCapacity = 8;
            o.SlowConsumerPolicy = SlowConsumerPolicy.Close;
        }));
        var transport = new BatchRecordingTransport();
        var alice = connections.Add("alice", transport);
        var envelopes = Enumerable.Range(0, 100).Select(i => Envelope(i, "alice")).ToArray();

        Assert.Equal(100, connections.Deliver(envelopes));

        await transport.WaitForFramesAsync(100);
        Assert.Null(alice.CloseStatus);
        Assert.All(transport.BatchSizes, size => Assert.InRange(size, 1, 4));
        Assert.Equal(Enumerable.Range(0, 100), transport.Frames.Select(f => BitConverter.ToInt32(f)));
    }

    [Fact]
    public async Task A_connection_whose_send_waits_does_not_hold_up_the_batch_for_the_others()
    {
        using var connections = new LocalConnections(Opts.Create());
        var slow = new BatchRecordingTransport();
        var fast = new BatchRecordingTransport();
        slow.Block();
        connections.Add("slow", slow);
        connections.Add("fast", fast);

        Assert.Equal(6, connections.Deliver([Envelope(0, "slow", "fast"), Envelope(1, "slow", "fast"), Envelope(2, "slow", "fast")]));

        Assert.Equal([3], fast.BatchSizes);
        Assert.Empty(slow.Frames);
        connections.Deliver([Envelope(3, "slow", "fast")]);
        slow.Release();
        await slow.WaitForFramesAsync(4);
        await fast.WaitForFramesAsync(4);
        Assert.Equal(Enumerable.Range(0, 4), slow.Frames.Select(f => BitConverter.ToInt32(f)));
        Assert.Equal([3, 1], fast.BatchSizes);
    }

    private static BackplaneEnvelope Envelope(int sequence, params string[] users)
        => EnvelopeCodec.Decode(EnvelopeCodec.Encode(EnvelopeKind.Users, "node-b", Guid.NewGuid(), users, BitConverter.GetBytes(sequence)));

    /// <summary>Records each burst it is handed; can hold sends until released.</summary>
    private sealed class BatchRecordingTransport : IConnectionTransport
    {
        private readonly List<int> _batches = [];
        private readonly List<byte[]> _frames = [];
        private readonly List<int> _threads = [];
        private TaskCompletionSource _gate = Open();

        public SemaphoreSlim Entered { get; } = new(0);

        public int[] BatchSizes
        {
            get
            {
                lock (_frames)
                {
                    return [.. _batches];
                }
            }
        }

        /// <summary>The distinct threads bursts were handed over on.</summary>
        public int[] Threads
        {
            get
            {
                lock (_frames)
                {
                    return [.. _threads];
                }
            }
        }

        public byte[][] Frames
        {
            get
            {
                lock (_frames)
                {
                    return [.. _frames];
                }
            }
        }

        public void Block() => Volatile.Write(ref _gate, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

        public void Release() => Volatile.Read(ref _gate).TrySetResult();

        public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
            => throw new InvalidOperationException("the connection must hand over bursts");

        public async ValueTask SendBatchAsync(ReadOnlyMemory<ReadOnlyMemory<byte>> frames, CancellationToken cancellationToken)
        {
            Entered.Release();
            lock (_frames)
            {
                if (!_threads.Contains(Environment.CurrentManagedThreadId))
                {
                    _threads.Add(Environment.CurrentManagedThreadId);
                }
            }

            await Volatile.Read(ref _gate).Task.WaitAsync(cancellationToken);
            lock (_frames)
            {
                _batches.Add(frames.Length);
                foreach (var frame in frames.Span)
                {
                    _frames.Add(frame.ToArray());
                }
            }
        }

        public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public async Task WaitForFramesAsync(int count)
        {
            var deadline = DateTime.UtcNow + Wait;
            while (Frames.Length < count)
            {
                Assert.True(DateTime.UtcNow < deadline, $"{Frames.Length} of {count} frames written");
                await Task.Delay(5);
            }
        }

        private static TaskCompletionSource Open()
        {
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            gate.SetResult();
            return gate;
        }
    }
}
