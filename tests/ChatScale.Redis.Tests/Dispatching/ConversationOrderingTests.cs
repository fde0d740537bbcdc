using System.Diagnostics;
using System.Globalization;
using System.Text;
using ChatScale.InMemory;
using ChatScale.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// End to end: messages of 20 conversations dispatched as background jobs (by a handler that fails 5 % of calls at
/// random) and delivered over the real Redis backplane to participants on two nodes, each of whom must see every
/// conversation complete and in enqueue order.
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class ConversationOrderingTests(RedisFixture redis, ITestOutputHelper output)
{
    private const int Conversations = 20;
    private const int MessagesPerConversation = 1_000;
    private const double FailureRate = 0.05;

    [Fact]
    public async Task RedisDispatcher_TwoInstances_FlakyHandler_EveryParticipantOnTwoNodesReceivesEachConversationInOrder()
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-order");
        await using var run = await ConversationRun.StartAsync(redis.ConnectionString, prefix);

        void Options(DispatcherOptions d)
        {
            d.MaxAttempts = 20;
            d.InitialBackoff = TimeSpan.FromMilliseconds(2);
            d.MaxBackoff = TimeSpan.FromMilliseconds(20);
        }

        // The dispatching nodes publish through their own RedisMessageBroadcaster (same key prefix as the participants' nodes).
        await using var a = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "dispatch-a", run.Register, Options);
        await using var b = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "dispatch-b", run.Register, Options);
        await Eventually.TrueAsync(() => a.Dispatcher.OwnedPartitionCount + b.Dispatcher.OwnedPartitionCount == 16 && a.Dispatcher.OwnedPartitionCount > 0 && b.Dispatcher.OwnedPartitionCount > 0, "both dispatchers to own partitions");

        // Each conversation's messages are enqueued one after another, alternately on either node.
        await run.EnqueueAllAsync((job, key, seq) => (seq % 2 == 0 ? a.Dispatcher : b.Dispatcher).EnqueueAsync(job, key));
        await run.VerifyAsync(output, "redis");
        Assert.Empty(await a.Dispatcher.GetDeadLettersAsync());
    }

    [Fact]
    public async Task InMemoryDispatcher_OneNode_FlakyHandler_EveryParticipantOnTwoNodesReceivesEachConversationInOrder()
    {
        var prefix = RedisFixture.UniquePrefix("dispatch-order-mem");
        await using var run = await ConversationRun.StartAsync(redis.ConnectionString, prefix);
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddOptions<ChatScaleOptions>().Configure(o =>
        {
            o.NodeId = "node-1";
            o.Dispatcher.WorkerCount = 4;
            o.Dispatcher.Partitions = 16;
            o.Dispatcher.MaxAttempts = 20;
            o.Dispatcher.InitialBackoff = TimeSpan.FromMilliseconds(2);
            o.Dispatcher.MaxBackoff = TimeSpan.FromMilliseconds(20);
        });

        // The in-memory dispatcher runs on node-1 and publishes through node-1's Redis broadcaster.
        services.AddSingleton(run.Node1.Broadcaster);
        services.AddSingleton<InMemoryBackgroundDispatcher>();
        run.Register(new DispatcherHost.Builder(services));
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        var dispatcher = provider.GetRequiredService<InMemoryBackgroundDispatcher>();
        await dispatcher.StartAsync(CancellationToken.None);
        try
        {
            await run.EnqueueAllAsync((job, key, _) => dispatcher.EnqueueAsync(job, key));
            await run.VerifyAsync(output, "in-memory");
            Assert.Empty(await dispatcher.GetDeadLettersAsync());
        }
        finally
        {
            await dispatcher.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Two participant nodes with one participant of every conversation on each.</summary>
    private sealed class ConversationRun : IAsyncDisposable
    {
        private readonly List<(string User, int Conversation, FakeTransport Transport)> _participants = [];
        private readonly Stopwatch _clock = new();

        private ConversationRun(TestNode node1, TestNode node2)
        {
            Node1 = node1;
            Node2 = node2;
        }

        public TestNode Node1 { get; }

        public TestNode Node2 { get; }

        public static async Task<ConversationRun> StartAsync(string connectionString, string prefix)
        {
            // Room for every frame, so the slow-consumer policy never drops one and hides (or fakes) a gap.
            static void Core(ChatScaleOptions o) => o.SendQueueCapacity = 10 * MessagesPerConversation;
            var run = new ConversationRun(
                await TestNode.StartAsync(connectionString, prefix, "node-1", core: Core),
                await TestNode.StartAsync(connectionString, prefix, "node-2", core: Core));
            for (var c = 0; c < Conversations; c++)
            {
                run._participants.Add(($"c{c}-a", c, await run.Node1.ConnectAsync($"c{c}-a")));
                run._participants.Add(($"c{c}-b", c, await run.Node2.ConnectAsync($"c{c}-b")));
            }

            return run;
        }

        public FlakyCounter Counter { get; } = new();

        /// <summary>Registers the flaky broadcast handler (it publishes through the host's <see cref="IMessageBroadcaster"/>).</summary>
        public Action<IChatScaleBuilder> Register => builder =>
        {
            builder.Services.AddSingleton(Counter);
            builder.AddJobHandler<Numbered, FlakyBroadcastHandler>();
        };

        public async Task EnqueueAllAsync(Func<Numbered, string, int, ValueTask<string>> enqueue)
        {
            _clock.Start();
            await Task.WhenAll(Enumerable.Range(0, Conversations).Select(c => Task.Run(async () =>
            {
                var key = $"c{c}";
                for (var seq = 0; seq < MessagesPerConversation; seq++)
                {
                    await enqueue(new Numbered(key, seq), key, seq);
                }
            })));
        }

        public async Task VerifyAsync(ITestOutputHelper output, string label)
        {
            var enqueued = _clock.Elapsed;
            await Eventually.TrueAsync(
                () => _participants.All(p => p.Transport.Count >= MessagesPerConversation && Distinct(p.Transport) == MessagesPerConversation),
                "every participant to receive every message of its conversation",
                TimeSpan.FromSeconds(180));
            output.WriteLine($"{label}: {Conversations} x {MessagesPerConversation} messages to {_participants.Count} participants on 2 nodes; "
                + $"enqueued in {enqueued.TotalSeconds:F1} s, all delivered after {_clock.Elapsed.TotalSeconds:F1} s; "
                + $"{Counter.Failures} injected failures in {Counter.Calls} handler calls");

            foreach (var (user, conversation, transport) in _participants)
            {
                var received = Parse(transport);
                Assert.All(received, r => Assert.Equal(conversation, r.Conversation));

                // At-least-once may repeat a message; dropping repeats must leave exactly 0..N-1 in order.
                var seen = new HashSet<int>();
                var order = received.Select(r => r.Seq).Where(seen.Add).ToArray();
                Assert.True(Enumerable.Range(0, MessagesPerConversation).SequenceEqual(order), $"{user} received conversation {conversation} out of order");
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Node1.DisposeAsync();
            await Node2.DisposeAsync();
        }

        private static int Distinct(FakeTransport transport) => transport.Frames.Distinct(StringComparer.Ordinal).Count();

        private static List<(int Conversation, int Seq)> Parse(FakeTransport transport)
            => transport.Frames.Select(f =>
            {
                var colon = f.IndexOf(':', StringComparison.Ordinal);
                return (int.Parse(f.AsSpan(0, colon), CultureInfo.InvariantCulture), int.Parse(f.AsSpan(colon + 1), CultureInfo.InvariantCulture));
            }).ToList();
    }

    public sealed class FlakyCounter
    {
        private int _calls;
        private int _failures;

        public int Calls => Volatile.Read(ref _calls);

        public int Failures => Volatile.Read(ref _failures);

        /// <summary>Counts a call; true for the 5 % that should fail.</summary>
        public bool ShouldFail()
        {
            Interlocked.Increment(ref _calls);
#pragma warning disable CA5394 // Test randomness.
            if (Random.Shared.NextDouble() >= FailureRate)
#pragma warning restore CA5394
            {
                return false;
            }

            Interlocked.Increment(ref _failures);
            return true;
        }
    }

    /// <summary>Publishes "conversation:seq" to the conversation's two participants; 5 % of calls throw first (and are retried).</summary>
    public sealed class FlakyBroadcastHandler(IMessageBroadcaster broadcaster, FlakyCounter counter) : IJobHandler<Numbered>
    {
        public async ValueTask HandleAsync(Numbered job, JobContext context, CancellationToken cancellationToken)
        {
            if (counter.ShouldFail())
            {
                throw new InvalidOperationException("injected failure");
            }

            var payload = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{job.Conversation.AsSpan(1)}:{job.Seq}"));
            await broadcaster.PublishAsync([$"{job.Conversation}-a", $"{job.Conversation}-b"], payload, cancellationToken);
        }
    }
}
