namespace ChatScale.LoadTest;

/// <summary>Publishes a <see cref="BroadcastJob"/> to its group.</summary>
internal sealed class BroadcastJobHandler(IMessageBroadcaster broadcaster, GroupCache groups) : IJobHandler<BroadcastJob>
{
    public async ValueTask HandleAsync(BroadcastJob job, JobContext context, CancellationToken cancellationToken)
        => await broadcaster.PublishAsync(groups.Get(job.Group, job.Size), job.Payload, cancellationToken);
}
