using BenchmarkDotNet.Attributes;
using ChatScale;
using ChatScale.Connections;
using Microsoft.Extensions.Options;

namespace ChatScale.Benchmarks;

/// <summary>
/// Local fan-out: one <see cref="LocalConnections.Deliver"/> of a 256-byte frame to N recipients, each with one
/// connection. Report "ns per recipient" as Mean / N and "bytes per recipient" as Allocated / N.
/// Two transports: <c>Busy</c> keeps every writer loop inside a send, so Deliver only appends to queues (the cost of
/// ChatScale's own code); <c>Idle</c> completes sends at once, so every Deliver also wakes N writer loops through the
/// thread pool (the full cost, including the runtime's scheduling).
/// </summary>
[MemoryDiagnoser]
public class LocalFanOutBenchmarks
{
    private LocalConnections _connections = null!;
    private string[] _users = null!;
    private ReadOnlyMemory<byte> _payload;
    private TaskCompletionSource _release = null!;

    [Params(1, 100, 10_000)]
    public int Recipients { get; set; }

    [Params("Busy", "Idle")]
    public string Writers { get; set; } = "Busy";

    [GlobalSetup]
    public void Setup()
    {
        _release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _connections = new LocalConnections(Options.Create(new ChatScaleOptions
        {
            NodeId = "bench",
            SendQueueCapacity = 64,
            SlowConsumerPolicy = SlowConsumerPolicy.DropOldest,
        }));
        IConnectionTransport transport = Writers == "Busy" ? new BusyTransport(_release.Task) : new IdleTransport();
        _users = new string[Recipients];
        for (var i = 0; i < Recipients; i++)
        {
            _users[i] = $"user-{i}";
            _connections.Add(_users[i], transport);
        }

        _payload = new byte[256];

        // Fill the queues once so that Busy runs in the steady state (full queue, drop-oldest, no growth).
        for (var i = 0; i < 70; i++)
        {
            _connections.Deliver(_users, _payload);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _release.TrySetResult();
        _connections.Dispose();
    }

    [Benchmark]
    public int Deliver() => _connections.Deliver(_users, _payload);

    private sealed class BusyTransport(Task never) : IConnectionTransport
    {
        public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken) => new(never.WaitAsync(cancellationToken));

        public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class IdleTransport : IConnectionTransport
    {
        public ValueTask SendAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask CloseAsync(ConnectionCloseStatus status, string description, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
