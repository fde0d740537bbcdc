using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using ChatScale.Samples.Chat.Api;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Tests.Infrastructure;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

/// <summary>
/// Public channels (ChatScale groups) on two sample nodes sharing one redis-server and one MongoDB database
/// (CongoDB unless <c>CHATSCALE_TEST_MONGO</c> names a server).
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class ChannelTests(RedisFixture redis, MongoFixture mongo) : TwoChatNodes(redis, mongo, "channels")
{
    [Fact]
    public async Task A_post_reaches_every_member_connected_to_either_node_and_only_members()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        var carol = await SignInAsync(Node2, "carol");
        await bob.ConnectAsync();
        await carol.ConnectAsync();

        // Bob joins while his socket is open on node 2; Alice, who posts from node 1, joins too. Carol does not.
        Assert.Equal(HttpStatusCode.NoContent, (await bob.Http.PutAsync("/api/channels/general/members/me", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await alice.Http.PutAsync("/api/channels/general/members/me", null)).StatusCode);
        var info = await alice.Http.GetFromJsonAsync<ChannelInfo>("/api/channels/general", ChatEvents.Json);
        Assert.Equal(new ChannelInfo("general", Members: 2, Online: 1, Joined: true), info);

        var posted = await alice.Http.PostAsJsonAsync("/api/channels/general/messages", new { text = "hello, channel" });

        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        var frame = JsonSerializer.Deserialize<ChannelFrame>(await bob.ReceiveFrameAsync(), ChatEvents.Json)!;
        Assert.Equal("channel", frame.Type);
        Assert.Equal(("general", "alice", "hello, channel"), (frame.Post.Channel, frame.Post.Sender, frame.Post.Text));

        // Carol, not a member, got nothing: the first frame she sees is a conversation message sent afterwards.
        var conversation = await alice.CreateConversationAsync("carol");
        var direct = await alice.SendAsync(conversation.Id, "only for Carol");
        Assert.Equal(direct.Id, (await carol.ReceiveMessageAsync()).Id);
        Assert.Equal(HttpStatusCode.Forbidden, (await carol.Http.PostAsJsonAsync("/api/channels/general/messages", new { text = "let me in" })).StatusCode);
    }

    [Fact]
    public async Task After_leaving_a_member_receives_no_more_posts()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        await bob.ConnectAsync();
        await alice.Http.PutAsync("/api/channels/news/members/me", null);
        await bob.Http.PutAsync("/api/channels/news/members/me", null);

        Assert.Equal(HttpStatusCode.NoContent, (await bob.Http.DeleteAsync("/api/channels/news/members/me")).StatusCode);
        await alice.Http.PostAsJsonAsync("/api/channels/news/messages", new { text = "after Bob left" });
        var conversation = await alice.CreateConversationAsync("bob");
        var direct = await alice.SendAsync(conversation.Id, "still here?");

        Assert.Equal(direct.Id, (await bob.ReceiveMessageAsync()).Id); // the channel post never reached him
        var info = await bob.Http.GetFromJsonAsync<ChannelInfo>("/api/channels/news", ChatEvents.Json);
        Assert.Equal(new ChannelInfo("news", Members: 1, Online: 0, Joined: false), info);
        Assert.Equal(HttpStatusCode.BadRequest, (await bob.Http.PutAsync("/api/channels/not%20a%20name/members/me", null)).StatusCode);
    }

    private sealed record ChannelFrame(string Type, ChannelPost Post);
}
