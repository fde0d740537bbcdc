using ChatScale.Core.Tests.TestSupport;
using ChatScale.InMemory;
using Microsoft.Extensions.Time.Testing;

namespace ChatScale.Core.Tests.InMemory;

public sealed class InMemoryConnectionRegistryTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-25T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task LocateAsync_GroupsOnlineUsersByNodeAndListsOfflineOnes()
    {
        var registry = Create();
        await registry.RegisterAsync(new("c1", "alice", "n1"));
        await registry.RegisterAsync(new("c2", "alice", "n2"));
        await registry.RegisterAsync(new("c3", "alice", "n2"));
        await registry.RegisterAsync(new("c4", "bob", "n2"));

        var lookup = await registry.LocateAsync(["alice", "bob", "carol"]);

        Assert.Equal(["alice"], lookup.UsersByNode["n1"]);
        Assert.Equal(["alice", "bob"], lookup.UsersByNode["n2"]);
        Assert.Equal(["carol"], lookup.OfflineUsers);
        Assert.Equal(3, await registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task UnregisterAsync_LastConnection_MakesTheUserOffline()
    {
        var registry = Create();
        var c = new ConnectionRegistration("c1", "alice", "n1");
        await registry.RegisterAsync(c);
        await registry.UnregisterAsync(c);
        await registry.UnregisterAsync(c); // idempotent

        Assert.Equal(["alice"], (await registry.LocateAsync(["alice"])).OfflineUsers);
        Assert.Equal(0, await registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task NodeThatStopsHeartbeating_IsOfflineAfterTheTimeout()
    {
        var registry = Create();
        await registry.HeartbeatAsync("n1");
        await registry.HeartbeatAsync("n2");
        await registry.RegisterAsync(new("c1", "alice", "n1"));
        await registry.RegisterAsync(new("c2", "bob", "n2"));

        _time.Advance(TimeSpan.FromSeconds(10));
        await registry.HeartbeatAsync("n2");
        _time.Advance(TimeSpan.FromSeconds(6)); // n1 last seen 16 s ago, n2 6 s ago; timeout 15 s

        var lookup = await registry.LocateAsync(["alice", "bob"]);
        Assert.Equal(["alice"], lookup.OfflineUsers);
        Assert.Equal(["bob"], lookup.UsersByNode["n2"]);
        Assert.False(lookup.UsersByNode.ContainsKey("n1"));
        Assert.Equal(0, await registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task RemoveNodeAsync_RemovesOnlyThatNodesConnections()
    {
        var registry = Create();
        await registry.RegisterAsync(new("c1", "alice", "n1"));
        await registry.RegisterAsync(new("c2", "alice", "n2"));
        await registry.RegisterAsync(new("c3", "bob", "n1"));

        await registry.RemoveNodeAsync("n1");

        var lookup = await registry.LocateAsync(["alice", "bob"]);
        Assert.Equal(["alice"], lookup.UsersByNode["n2"]);
        Assert.Equal(["bob"], lookup.OfflineUsers);
    }

    [Fact]
    public async Task ConcurrentRegisterAndUnregister_LeavesNoEntries()
    {
        var registry = Create();
        await Parallel.ForAsync(0, 10_000, async (i, ct) =>
        {
            var c = new ConnectionRegistration($"c{i}", $"user-{i % 97}", $"n{i % 3}");
            await registry.RegisterAsync(c, ct);
            await registry.UnregisterAsync(c, ct);
        });

        var users = Enumerable.Range(0, 97).Select(i => $"user-{i}").ToArray();
        Assert.Equal(97, (await registry.LocateAsync(users)).OfflineUsers.Count);
    }

    private InMemoryConnectionRegistry Create() => new(Opts.Create(), _time);
}
