using ChatScale.Connections;
using ChatScale.Core.Tests.TestSupport;
using ChatScale.InMemory;

namespace ChatScale.Core.Tests.InMemory;

public sealed class InMemoryMessageBroadcasterTests
{
    [Fact]
    public async Task PublishAsync_ReachesConnectedUsersAndReportsOfflineOnes()
    {
        using var connections = new LocalConnections(Opts.Create());
        var alice = new RecordingTransport();
        connections.Add("alice", alice);
        var broadcaster = new InMemoryMessageBroadcaster(connections);

        var result = await broadcaster.PublishAsync(["alice", "carol"], new byte[] { 42 });

        Assert.Equal(["carol"], result.OfflineUsers);
        Assert.Equal(1, result.TargetedNodes);
        Assert.NotEqual(Guid.Empty, result.MessageId);
        await alice.WaitForCountAsync(1);
        Assert.Equal(new byte[] { 42 }, alice.Frames[0]);
    }

    [Fact]
    public async Task PublishAsync_EveryoneOffline_TargetsNoNode()
    {
        using var connections = new LocalConnections(Opts.Create());
        var broadcaster = new InMemoryMessageBroadcaster(connections);

        var result = await broadcaster.PublishAsync(["bob"], new byte[] { 1 });

        Assert.Equal(0, result.TargetedNodes);
        Assert.Equal(["bob"], result.OfflineUsers);
    }

    [Fact]
    public async Task PublishToAllAsync_ReachesEveryConnection()
    {
        using var connections = new LocalConnections(Opts.Create());
        var a = new RecordingTransport();
        var b = new RecordingTransport();
        connections.Add("a", a);
        connections.Add("b", b);

        await new InMemoryMessageBroadcaster(connections).PublishToAllAsync(new byte[] { 5 });

        await a.WaitForCountAsync(1);
        await b.WaitForCountAsync(1);
    }

    [Fact]
    public async Task PublishAsync_CancelledToken_Throws()
    {
        using var connections = new LocalConnections(Opts.Create());
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new InMemoryMessageBroadcaster(connections).PublishAsync(["a"], new byte[] { 1 }, cts.Token).AsTask());
    }
}
