using ChatScale.Backplane;
using ChatScale.Connections;
using ChatScale.Core.Tests.TestSupport;
using ChatScale.InMemory;

namespace ChatScale.Core.Tests.Groups;

public sealed class InMemoryGroupManagerTests
{
    [Fact]
    public async Task PublishToGroupAsync_ReachesEveryConnectedMemberOnceAndSkipsTheExcludedUser()
    {
        using var connections = new LocalConnections(Opts.Create());
        var alice = new RecordingTransport();
        var bob = new RecordingTransport();
        var bobSecondTab = new RecordingTransport();
        var carol = new RecordingTransport();
        connections.Add("alice", alice);
        connections.Add("bob", bob);
        connections.Add("bob", bobSecondTab);
        connections.Add("carol", carol);
        using var groups = new InMemoryGroupManager(connections);
        Assert.True(await groups.AddToGroupAsync("room", "alice"));
        Assert.True(await groups.AddToGroupAsync("room", "bob"));
        Assert.False(await groups.AddToGroupAsync("room", "bob"));

        await groups.PublishToGroupAsync("room", new byte[] { 1 }, exceptUserId: "alice");
        await groups.PublishToGroupAsync("room", new byte[] { 2 });

        await bob.WaitForCountAsync(2);
        await bobSecondTab.WaitForCountAsync(2);
        await alice.WaitForCountAsync(1);
        Assert.Equal(new byte[] { 2 }, alice.Frames[0]);
        Assert.Equal(new byte[] { 1 }, bob.Frames[0]);
        Assert.Equal(new byte[] { 2 }, bob.Frames[1]);
        Assert.Empty(carol.Frames);
    }

    [Fact]
    public async Task RemoveFromGroupAsync_StopsDelivery()
    {
        using var connections = new LocalConnections(Opts.Create());
        var alice = new RecordingTransport();
        connections.Add("alice", alice);
        using var groups = new InMemoryGroupManager(connections);
        await groups.AddToGroupAsync("room", "alice");

        Assert.True(await groups.RemoveFromGroupAsync("room", "alice"));
        Assert.False(await groups.RemoveFromGroupAsync("room", "alice"));
        var result = await groups.PublishToGroupAsync("room", new byte[] { 1 });
        await new InMemoryMessageBroadcaster(connections).PublishAsync(["alice"], new byte[] { 2 });

        await alice.WaitForCountAsync(1);
        Assert.Equal(new byte[] { 2 }, alice.Frames[0]);
        Assert.Equal(0, result.TargetedNodes);
        Assert.Equal(0, await groups.CountMembersAsync("room"));
        Assert.Empty(await groups.GetGroupsAsync("alice"));
    }

    [Fact]
    public async Task Membership_is_kept_by_user_so_a_connection_opened_later_receives_group_messages()
    {
        using var connections = new LocalConnections(Opts.Create());
        using var groups = new InMemoryGroupManager(connections);
        await groups.AddToGroupAsync("room", "alice");
        var alice = new RecordingTransport();
        connections.Add("alice", alice);

        var result = await groups.PublishToGroupAsync("room", new byte[] { 7 });

        Assert.Equal(1, result.TargetedNodes);
        await alice.WaitForCountAsync(1);
    }

    [Fact]
    public async Task GetMembersAsync_pages_through_every_member_exactly_once_and_counts_match()
    {
        using var connections = new LocalConnections(Opts.Create());
        using var groups = new InMemoryGroupManager(connections);
        var users = Enumerable.Range(0, 250).Select(i => $"user-{i}").ToArray();
        foreach (var user in users)
        {
            await groups.AddToGroupAsync("big", user);
        }

        await groups.AddToGroupAsync("other", "user-3");

        var seen = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = await groups.GetMembersAsync("big", cursor, 100);
            seen.AddRange(page.Members);
            cursor = page.NextCursor;
            pages++;
        }
        while (cursor is not null);

        Assert.Equal(3, pages);
        Assert.Equal(users.Order(StringComparer.Ordinal), seen);
        Assert.Equal(250, await groups.CountMembersAsync("big"));
        Assert.Equal(["big", "other"], (await groups.GetGroupsAsync("user-3")).Order(StringComparer.Ordinal));
        Assert.True((await groups.GetMembersAsync("missing")).IsLast);
    }

    [Fact]
    public async Task CountOnlineMembersAsync_counts_members_with_a_connection_once_each_and_follows_disconnects()
    {
        using var connections = new LocalConnections(Opts.Create());
        using var groups = new InMemoryGroupManager(connections);
        foreach (var user in new[] { "alice", "bob", "carol" })
        {
            await groups.AddToGroupAsync("room", user);
        }

        connections.Add("alice", new RecordingTransport());
        var bob = connections.Add("bob", new RecordingTransport());
        connections.Add("bob", new RecordingTransport());
        connections.Add("mallory", new RecordingTransport()); // online, not a member

        Assert.Equal(3, await groups.CountMembersAsync("room"));
        Assert.Equal(2, await groups.CountOnlineMembersAsync("room"));
        Assert.Equal(0, await groups.CountOnlineMembersAsync("empty"));

        await groups.RemoveFromGroupAsync("room", "alice");
        bob.Abort(); // leaves the node's connections at once

        Assert.Equal(1, await groups.CountOnlineMembersAsync("room")); // Bob's second connection is still open.
    }

    [Fact]
    public async Task A_connection_added_on_its_own_receives_the_group_once_until_it_closes()
    {
        using var connections = new LocalConnections(Opts.Create());
        using var groups = new InMemoryGroupManager(connections);
        var tab1 = new RecordingTransport();
        var tab2 = new RecordingTransport();
        var conversationTab = connections.Add("carol", tab1);
        connections.Add("carol", tab2);

        Assert.True(await groups.AddConnectionToGroupAsync("conversation", conversationTab.ConnectionId));
        Assert.False(await groups.AddConnectionToGroupAsync("conversation", conversationTab.ConnectionId));
        Assert.False(await groups.AddConnectionToGroupAsync("conversation", "no-such-connection"));
        await groups.PublishToGroupAsync("conversation", new byte[] { 1 });
        await groups.AddToGroupAsync("conversation", "carol"); // now a member too: still once per connection
        await groups.PublishToGroupAsync("conversation", new byte[] { 2 });
        await groups.RemoveFromGroupAsync("conversation", "carol");
        await groups.PublishToGroupAsync("conversation", new byte[] { 3 });
        await groups.PublishToGroupAsync("conversation", new byte[] { 4 }, exceptUserId: "carol");

        await tab1.WaitForCountAsync(3);
        await tab2.WaitForCountAsync(1);
        Assert.Equal(new byte[][] { [1], [2], [3] }, tab1.Frames);
        Assert.Equal(new byte[][] { [2] }, tab2.Frames);
        Assert.Equal(0, await groups.CountMembersAsync("conversation")); // not a membership
        Assert.Empty(await groups.GetGroupsAsync("carol"));

        conversationTab.Abort();
        await conversationTab.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        for (var i = 0; i < 1000 && groups.ConnectionsTracked > 0; i++)
        {
            await Task.Delay(10); // the cleanup runs as a continuation of the connection's completion
        }

        Assert.Equal(0, groups.ConnectionsTracked);
        Assert.False(await groups.RemoveConnectionFromGroupAsync("conversation", conversationTab.ConnectionId));
        Assert.Equal(0, (await groups.PublishToGroupAsync("conversation", new byte[] { 5 })).TargetedNodes);
    }

    [Fact]
    public async Task Invalid_ids_are_rejected_naming_the_argument()
    {
        using var connections = new LocalConnections(Opts.Create());
        using var groups = new InMemoryGroupManager(connections);

        var ex = await Assert.ThrowsAsync<ArgumentException>(async () => await groups.AddToGroupAsync("", "alice"));
        Assert.Equal("groupId", ex.ParamName);
        ex = await Assert.ThrowsAsync<ArgumentException>(async () => await groups.AddToGroupAsync("room", "\uD800"));
        Assert.Equal("userId", ex.ParamName);
    }

    [Fact]
    public void Group_envelope_round_trips_with_a_header_bounded_by_the_ids_whatever_the_payload()
    {
        var payload = new byte[10_000];
        payload.AsSpan().Fill(9);

        var encoded = EnvelopeCodec.Encode(EnvelopeKind.Group, "node-1", Guid.CreateVersion7(), ["room", "alice"], payload);
        var decoded = EnvelopeCodec.Decode(encoded);

        Assert.Equal(EnvelopeKind.Group, decoded.Kind);
        Assert.Equal(["room", "alice"], decoded.Recipients);
        Assert.Equal(payload, decoded.Payload.ToArray());
        Assert.True(encoded.Length - payload.Length <= 3 + 1 + "node-1".Length + 16 + 1 + 1 + 4 + 1 + 5 + 3);
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(EnvelopeKind.Group, "n", Guid.Empty, [], payload));
        Assert.Throws<ArgumentException>(() => EnvelopeCodec.Encode(EnvelopeKind.Group, "n", Guid.Empty, ["a", "b", "c"], payload));
    }

    [Fact]
    public void A_group_envelope_listing_three_ids_is_rejected_by_the_decoder()
    {
        var users = EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.Empty, ["a", "b", "c"], new byte[] { 1 });
        users[2] = (byte)EnvelopeKind.Group;

        Assert.Throws<EnvelopeFormatException>(() => EnvelopeCodec.Decode(users));
    }
}
