using System.Net;
using System.Net.Http.Json;
using ChatScale.InMemory;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

/// <summary>
/// When the durable dispatcher cannot take the broadcast job (Redis unreachable), the send answers 503 with
/// Retry-After; the message is already saved, and retrying with the same id delivers it once, with the same seq.
/// </summary>
public sealed class DispatchOutageTests
{
    [Fact]
    public async Task A_send_whose_job_is_refused_gets_503_and_a_retry_with_the_same_id_delivers_it_once()
    {
        var refusals = new RefuseFirstEnqueues(1);
        await using var node = await ChatNode.StartAsync("outage", redis: null, redisKeyPrefix: null, mongo: null, configure: b =>
            b.Services.Replace(ServiceDescriptor.Singleton<IBackgroundDispatcher>(sp =>
                refusals.Wrap(ActivatorUtilities.CreateInstance<InMemoryBackgroundDispatcher>(sp)))));
        await using var alice = await node.SignInAsync("alice");
        await using var bob = await node.SignInAsync("bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob");
        var id = MongoDB.Bson.ObjectId.GenerateNewId().ToString();

        var refused = await alice.PostMessageAsync(conversation.Id, "hello", id);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
        var problem = await refused.Content.ReadFromJsonAsync<Dictionary<string, object>>();
        Assert.Equal(id, problem!["messageId"].ToString());
        Assert.Single(await alice.HistoryAsync(conversation.Id)); // saved even though delivery was refused

        var retried = await alice.PostMessageAsync(conversation.Id, "hello", id);

        Assert.Equal(HttpStatusCode.Accepted, retried.StatusCode);
        var saved = (await retried.Content.ReadFromJsonAsync<ChatMessage>(ChatEvents.Json))!;
        Assert.Equal(id, saved.Id);
        Assert.Equal(1, saved.Seq);
        Assert.Equal(saved, await bob.ReceiveMessageAsync());
        Assert.Single(await alice.HistoryAsync(conversation.Id));
    }

    /// <summary>Refuses the first N enqueues the way the Redis dispatcher does while Redis is down.</summary>
    private sealed class RefuseFirstEnqueues(int count)
    {
        private int _remaining = count;

        public IBackgroundDispatcher Wrap(InMemoryBackgroundDispatcher inner) => new Dispatcher(inner, this);

        private sealed class Dispatcher(InMemoryBackgroundDispatcher inner, RefuseFirstEnqueues owner) : IBackgroundDispatcher, IHostedService
        {
            public ValueTask<string> EnqueueAsync<TJob>(TJob job, string? orderingKey = null, CancellationToken cancellationToken = default)
                where TJob : notnull
                => Interlocked.Decrement(ref owner._remaining) >= 0
                    ? throw new BackplaneUnavailableException("Redis is unreachable (test).")
                    : inner.EnqueueAsync(job, orderingKey, cancellationToken);

            public ValueTask<IReadOnlyList<DeadLetteredJob>> GetDeadLettersAsync(int maxCount = 100, CancellationToken cancellationToken = default) => inner.GetDeadLettersAsync(maxCount, cancellationToken);

            public ValueTask<int> ReplayDeadLettersAsync(string? jobId = null, CancellationToken cancellationToken = default) => inner.ReplayDeadLettersAsync(jobId, cancellationToken);

            public ValueTask<int> PurgeDeadLettersAsync(CancellationToken cancellationToken = default) => inner.PurgeDeadLettersAsync(cancellationToken);

            public ValueTask<DispatcherStatistics> GetStatisticsAsync(CancellationToken cancellationToken = default) => inner.GetStatisticsAsync(cancellationToken);

            public Task StartAsync(CancellationToken cancellationToken) => inner.StartAsync(cancellationToken);

            public Task StopAsync(CancellationToken cancellationToken) => inner.StopAsync(cancellationToken);
        }
    }
}
