using System.Globalization;
using BenchmarkDotNet.Attributes;
using ChatScale.Connections;
using ChatScale.InMemory;
using ChatScale.Redis;
using ChatScale.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace ChatScale.Benchmarks;

/// <summary>
/// What the background path adds to a publish, on a real redis-server: the product's flow (enqueue a job keyed by the
/// conversation on node A; A's <see cref="RedisStreamDispatcher"/> runs the handler, which publishes to the
/// conversation's 50 participants through <see cref="RedisMessageBroadcaster"/>) against the same publish called
/// directly on node A. Each operation ends when node B's listener has handed the frame to all 50 recipients'
/// transports. <c>One</c>: one message at a time (the latency a job adds). <c>Burst</c>: 1,000 messages over 20
/// conversations from 16 concurrent senders (the throughput cost per message, as in the load tool).
/// </summary>
/// <remarks>
/// Two nodes in one process, each with its own Redis connection, wired as <c>AddChatScale().AddRedis()</c> wires them;
/// only node A runs its dispatcher (64 partitions, all owned by A before measuring), so a job never waits for a
/// handover. Allocations are the whole process's: both nodes, both forms.
/// </remarks>
[MemoryDiagnoser]
public class DispatchedPublishBenchmarks
{
    private const int Recipients = 50;
    private const int Conversations = 20;
    private const int BurstMessages = 1_000;
    private const int Senders = 16;

    private RedisServer _redis = null!;
    private BenchNode _a = null!;
    private BenchNode _b = null!;
    private CountdownTransport _transport = null!;
    private Participants _participants = null!;
    private IMessageBroadcaster _broadcaster = null!;
    private RedisStreamDispatcher _dispatcher = null!;
    private readonly byte[] _payload = System.Text.Encoding.UTF8.GetBytes("{\"s\":1,\"t\":1234567890,\"p\":\"" + new string('x', 200) + "\"}");

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _redis = await RedisServer.StartNewAsync();
        _participants = new Participants(Conversations, Recipients);
        _a = await StartNodeAsync("node-a");
        _b = await StartNodeAsync("node-b");
        _transport = new CountdownTransport();
        foreach (var conversation in _participants.All)
        {
            foreach (var user in conversation)
            {
                var connection = _b.Connections.Add(user, _transport);
                await _b.Registry.RegisterAsync(new ConnectionRegistration(connection.ConnectionId, user, "node-b"));
            }
        }

        await _b.Registry.HeartbeatAsync("node-b");
        _broadcaster = _a.Broadcaster;
        _dispatcher = _a.Services.GetRequiredService<RedisStreamDispatcher>();
        await _dispatcher.StartAsync(CancellationToken.None);
        var started = System.Diagnostics.Stopwatch.StartNew();
        while (_dispatcher.OwnedPartitionCount < 64 && started.Elapsed < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(20);
        }

        await DirectOne();
        await DispatchedOne();
    }

    [Benchmark(Baseline = true)]
    public async Task DirectOne()
    {
        var delivered = _transport.Expect(Recipients);
        await _broadcaster.PublishAsync(_participants.All[0], _payload);
        await delivered;
    }

    [Benchmark]
    public async Task DispatchedOne()
    {
        var delivered = _transport.Expect(Recipients);
        await _dispatcher.EnqueueAsync(new PublishJob(0, _payload), _participants.Keys[0]);
        await delivered;
    }

    [Benchmark(OperationsPerInvoke = BurstMessages)]
    public Task DirectBurst() => BurstAsync(seq => _broadcaster.PublishAsync(_participants.All[seq % Conversations], _payload).AsTask());

    [Benchmark(OperationsPerInvoke = BurstMessages)]
    public Task DispatchedBurst() => BurstAsync(seq => _dispatcher.EnqueueAsync(new PublishJob(seq % Conversations, _payload), _participants.Keys[seq % Conversations]).AsTask());

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        await _dispatcher.StopAsync(CancellationToken.None);
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        await _redis.DisposeAsync();
    }

    private async Task BurstAsync(Func<int, Task> send)
    {
        var delivered = _transport.Expect(BurstMessages * Recipients);
        var next = -1;
        var senders = new Task[Senders];
        for (var i = 0; i < senders.Length; i++)
        {
            senders[i] = Task.Run(async () =>
            {
                int seq;
                while ((seq = Interlocked.Increment(ref next)) < BurstMessages)
                {
                    await send(seq);
                }
            });
        }

        await Task.WhenAll(senders);
        await delivered;
    }

    /// <summary>The job of the product's flow: which conversation, and the message (serialized once by the API).</summary>
    public sealed record PublishJob(int Conversation, byte[] Payload);

    /// <summary>Loads the conversation's participants (a table here) and publishes the message to them.</summary>
    public sealed class PublishJobHandler(IMessageBroadcaster broadcaster, Participants participants) : IJobHandler<PublishJob>
    {
        public async ValueTask HandleAsync(PublishJob job, JobContext context, CancellationToken cancellationToken)
            => await broadcaster.PublishAsync(participants.All[job.Conversation], job.Payload, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The conversations' participants and ordering keys.</summary>
    public sealed class Participants
    {
        public Participants(int conversations, int size)
        {
            All = new string[conversations][];
            Keys = new string[conversations];
            for (var c = 0; c < conversations; c++)
            {
                Keys[c] = "conversation-" + c.ToString(CultureInfo.InvariantCulture);
                All[c] = new string[size];
                for (var u = 0; u < size; u++)
                {
                    All[c][u] = "user-" + ((c * size) + u).ToString("D6", CultureInfo.InvariantCulture);
                }
            }
        }

        public string[][] All { get; }

        public string[] Keys { get; }
    }

    private Task<BenchNode> StartNodeAsync(string nodeId)
        => BenchNode.StartAsync(_redis.ConnectionString, nodeId, "bench-dispatch", (services, chatScale) =>
        {
            services.AddSingleton(_participants);
            chatScale.AddJobHandler<PublishJob, PublishJobHandler>();
        });
}
