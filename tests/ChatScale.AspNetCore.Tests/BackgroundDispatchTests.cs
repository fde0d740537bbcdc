using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.AspNetCore.Tests;

/// <summary>The single-node default from AddChatScale(): enqueue returns at once, a worker publishes, the socket receives.</summary>
public sealed class BackgroundDispatchTests
{
    [Fact]
    public async Task Enqueued_job_runs_on_the_default_in_memory_dispatcher_and_reaches_the_socket()
    {
        await using var node = await TestNode.StartAsync(configure: b => b.Services.AddChatScale().AddJobHandler<Notify, NotifyHandler>());
        using var bob = await node.ConnectAsync("bob");
        var dispatcher = node.Services.GetRequiredService<IBackgroundDispatcher>();

        var jobId = await dispatcher.EnqueueAsync(new Notify("bob", "hello from a worker"), orderingKey: "conversation-1");

        Assert.False(string.IsNullOrEmpty(jobId));
        Assert.Equal("hello from a worker", await bob.ReceiveTextAsync());
        await Poll.UntilAsync(async () => (await dispatcher.GetStatisticsAsync()) is { Pending: 0, InFlight: 0 }, "the job completes");
    }

    [Fact]
    public async Task Jobs_of_one_ordering_key_reach_the_socket_in_enqueue_order()
    {
        await using var node = await TestNode.StartAsync(configure: b => b.Services.AddChatScale().AddJobHandler<Notify, NotifyHandler>());
        using var bob = await node.ConnectAsync("bob");
        var dispatcher = node.Services.GetRequiredService<IBackgroundDispatcher>();

        for (var i = 0; i < 200; i++)
        {
            await dispatcher.EnqueueAsync(new Notify("bob", i.ToString(System.Globalization.CultureInfo.InvariantCulture)), orderingKey: "conversation-1");
        }

        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(i.ToString(System.Globalization.CultureInfo.InvariantCulture), await bob.ReceiveTextAsync());
        }
    }

    public sealed record Notify(string User, string Text);

    public sealed class NotifyHandler(IMessageBroadcaster broadcaster) : IJobHandler<Notify>
    {
        public async ValueTask HandleAsync(Notify job, JobContext context, CancellationToken cancellationToken)
            => await broadcaster.PublishAsync([job.User], Encoding.UTF8.GetBytes(job.Text), cancellationToken);
    }
}
