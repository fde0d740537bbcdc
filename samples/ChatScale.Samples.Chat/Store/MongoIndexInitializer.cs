namespace ChatScale.Samples.Chat.Store;

/// <summary>Creates the MongoDB indexes when the host starts, before it accepts requests.</summary>
internal sealed class MongoIndexInitializer(MongoChatStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.EnsureIndexesAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
