using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using ChatScale.InMemory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ChatScale.AspNetCore.Tests;

/// <summary>The architecture's flow on one node: enqueue a job, a worker publishes, the client's socket gets it.</summary>
public sealed class DispatcherEndToEndTests
{
    [Fact]
    public async Task A_job_enqueued_on_the_dispatcher_is_run_by_the_host_and_reaches_the_client()
    {
        await using var node = await TestNode.StartAsync(configure: b =>
        {
            b.Services.TryAddSingleton<IBackgroundDispatcher, InMemoryBackgroundDispatcher>();
            b.Services.AddChatScale().AddJobHandler<SendChat, SendChatHandler>();
        });
        using var bob = await node.ConnectAsync("bob");

        await node.Services.GetRequiredService<IBackgroundDispatcher>().EnqueueAsync(new SendChat("bob", "hello"), orderingKey: "conversation-1");

        Assert.Equal("""{"text":"hello"}""", await bob.ReceiveTextAsync());
    }

    public sealed record SendChat(string To, string Text);

    private sealed class SendChatHandler(IMessageBroadcaster broadcaster) : IJobHandler<SendChat>
    {
        public async ValueTask HandleAsync(SendChat job, JobContext context, CancellationToken cancellationToken)
            => await broadcaster.PublishAsync([job.To], Encoding.UTF8.GetBytes($$"""{"text":"{{job.Text}}"}"""), cancellationToken);
    }
}
