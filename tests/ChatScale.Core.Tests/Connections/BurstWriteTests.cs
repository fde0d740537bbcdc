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

    /// <summary>Records each burst it is handed; can hold sends until released.</summary>
    private sealed class BatchRecordingTransport : IConnectionTransport
    {
        private readonly List<int> _batches = [];
        private readonly List<byte[]> _frames = [];
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
