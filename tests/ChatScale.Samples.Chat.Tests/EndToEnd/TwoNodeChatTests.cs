using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using ChatScale.Samples.Chat.Tests.Infrastructure;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

/// <summary>
/// Two sample nodes on loopback sharing one real redis-server (backplane + presence) and one MongoDB database:
/// the production shape, end to end over HTTP and WebSockets.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class TwoNodeChatTests(RedisFixture redis, MongoFixture mongo) : TwoChatNodes(redis, mongo, "sample")
{
    [Fact]
    public async Task Alice_posts_on_node_1_and_Bob_connected_to_node_2_receives_it_over_his_WebSocket()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob", "carol");

        var response = await alice.PostMessageAsync(conversation.Id, "hi Bob, from node 1");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var saved = (await response.Content.ReadFromJsonAsync<Chat.Store.ChatMessage>(Delivery.ChatEvents.Json))!;
        Assert.Equal("alice", saved.Sender);
        Assert.Equal(conversation.Id, saved.ConversationId);
        Assert.Equal(1, saved.Seq);
        Assert.Equal($"/api/conversations/{conversation.Id}/messages?after=0&limit=1", response.Headers.Location?.OriginalString);
        var received = await bob.ReceiveMessageAsync();
        Assert.Equal(saved, received);
    }

    [Fact]
    public async Task Carol_offline_gets_one_push_notification_and_the_online_and_sending_users_get_none()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob", "carol");

        var saved = await alice.SendAsync(conversation.Id, "Carol, are you there?");

        // The job publishes before it notifies, so once Bob has the message the notifications are being written.
        Assert.Equal(saved.Id, (await bob.ReceiveMessageAsync()).Id);
        await Eventually.TrueAsync(() => AllNotifications().Any(n => n.UserId == "carol"), "Carol's push notification");
        var notification = Assert.Single(AllNotifications());
        Assert.Equal(("carol", saved.Id, conversation.Id, "alice"), (notification.UserId, notification.MessageId, notification.ConversationId, notification.Sender));
        Assert.Equal("Carol, are you there?", notification.Preview);
    }

    [Fact]
    public async Task Carols_notification_is_visible_to_her_on_the_dev_endpoint_of_the_node_that_ran_the_job()
    {
        var alice = await SignInAsync(Node1, "alice");
        var conversation = await alice.CreateConversationAsync("carol");
        var saved = await alice.SendAsync(conversation.Id, "ping");

        await Eventually.TrueAsync(() => AllNotifications().Any(n => n.MessageId == saved.Id), "the notification");
        var jobNode = Node1.Notifications.Recorded.Count > 0 ? Node1 : Node2;
        var carol = await SignInAsync(jobNode, "carol");
        var seen = await carol.Http.GetFromJsonAsync<JsonElement>("/api/dev/notifications");
        Assert.Equal(saved.Id, Assert.Single(seen.EnumerateArray()).GetProperty("messageId").GetString());
    }

    [Fact]
    public async Task Mallory_who_is_not_a_participant_gets_403_on_every_conversation_endpoint_of_either_node()
    {
        var alice = await SignInAsync(Node1, "alice");
        var conversation = await alice.CreateConversationAsync("bob");
        await alice.SendAsync(conversation.Id, "secret");

        foreach (var node in new[] { Node1, Node2 })
        {
            var mallory = await SignInAsync(node, "mallory");
            var responses = new[]
            {
                await mallory.PostMessageAsync(conversation.Id, "let me in"),
                await mallory.Http.GetAsync($"/api/conversations/{conversation.Id}/messages"),
                await mallory.Http.GetAsync($"/api/conversations/{conversation.Id}"),
                await mallory.Http.GetAsync($"/api/conversations/{conversation.Id}/presence"),
            };
            Assert.All(responses, r => Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode));
            Assert.Equal("application/problem+json", responses[0].Content.Headers.ContentType?.MediaType);
            Assert.DoesNotContain(await mallory.Http.GetFromJsonAsync<JsonElement[]>("/api/conversations") ?? [], c => c.GetProperty("id").GetString() == conversation.Id);
        }

        Assert.Single(await alice.HistoryAsync(conversation.Id));
    }

    [Fact]
    public async Task Requests_without_a_valid_token_get_401_including_the_WebSocket()
    {
        using var anonymous = new HttpClient { BaseAddress = Node1.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/conversations")).StatusCode);

        using var noToken = new ClientWebSocket();
        noToken.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => noToken.ConnectAsync(Node2.WebSocketUri(null), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, noToken.HttpStatusCode);

        using var forged = new ClientWebSocket();
        forged.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => forged.ConnectAsync(Node2.WebSocketUri("eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ."), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, forged.HttpStatusCode);
    }

    [Fact]
    public async Task History_pages_with_before_and_catches_up_with_after_by_seq_across_nodes()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        var conversation = await alice.CreateConversationAsync("bob");
        var sent = new List<Chat.Store.ChatMessage>();
        for (var i = 0; i < 5; i++)
        {
            sent.Add(await alice.SendAsync(conversation.Id, $"message {i}"));
        }

        Assert.Equal([1, 2, 3, 4, 5], sent.Select(m => m.Seq));
        var latest = await bob.HistoryAsync(conversation.Id, "?limit=2");
        Assert.Equal(sent[3..], latest);

        var older = await bob.HistoryAsync(conversation.Id, $"?before={latest[0].Seq}&limit=2");
        Assert.Equal(sent[1..3], older);

        var missed = await bob.HistoryAsync(conversation.Id, "?after=2");
        Assert.Equal(sent[2..], missed);
        Assert.Equal(sent[1..4], await bob.HistoryAsync(conversation.Id, "?after=1&before=5"));
        Assert.Equal(sent, await bob.HistoryAsync(conversation.Id, "?after=0"));
        Assert.Equal(sent, await bob.HistoryAsync(conversation.Id));
    }

    [Fact]
    public async Task Messages_posted_concurrently_on_two_nodes_get_seqs_1_to_N_and_a_reader_catching_up_with_after_misses_none()
    {
        const int PerNode = 20;
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        var carol = await SignInAsync(Node1, "carol");
        var conversation = await alice.CreateConversationAsync("bob", "carol");

        var posting = Task.WhenAll(Enumerable.Range(0, PerNode).SelectMany(i => new[]
        {
            Task.Run(() => alice.SendAsync(conversation.Id, $"alice {i}")),
            Task.Run(() => bob.SendAsync(conversation.Id, $"bob {i}")),
        }));

        // Carol catches up meanwhile as the page does: ?after=<last contiguous seq>. Anything past a gap is kept but
        // the cursor stays before the gap until it is filled, so a message saved late (n+1 was visible before n)
        // is still fetched.
        var held = new Dictionary<long, Chat.Store.ChatMessage>();
        long last = 0;
        var fetchesAfterPosting = 0;
        bool stillPosting;
        do
        {
            stillPosting = !posting.IsCompleted;
            fetchesAfterPosting += stillPosting ? 0 : 1;
            foreach (var m in await carol.HistoryAsync(conversation.Id, $"?after={last}&limit=7"))
            {
                Assert.True(held.TryAdd(m.Seq, m) || held[m.Seq] == m, $"seq {m.Seq} came back as a different message");
            }

            while (held.ContainsKey(last + 1))
            {
                last++;
            }
        }
        while (stillPosting || (last < 2 * PerNode && fetchesAfterPosting <= 2 * PerNode));

        var sent = (await posting).OrderBy(m => m.Seq).ToList();
        Assert.Equal(Enumerable.Range(1, 2 * PerNode).Select(i => (long)i), sent.Select(m => m.Seq));
        Assert.Equal(PerNode, sent.Count(m => m.Sender == "alice"));
        Assert.Equal(sent, held.Values.OrderBy(m => m.Seq));
        Assert.Equal(2 * PerNode, last);

        // Afterwards, from either node, ?after=k returns exactly the messages numbered above k, in seq order.
        for (var k = 0; k <= sent.Count; k++)
        {
            var reader = k % 2 == 0 ? carol : bob;
            Assert.Equal(sent[k..], await reader.HistoryAsync(conversation.Id, $"?after={k}&limit=200"));
        }
    }

    [Fact]
    public async Task A_conversations_messages_reach_the_other_node_in_the_order_they_were_accepted()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob");

        var sent = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            sent.Add((await alice.SendAsync(conversation.Id, $"#{i}")).Id);
        }

        var received = new List<Chat.Store.ChatMessage>();
        while (received.Count < sent.Count)
        {
            received.Add(await bob.ReceiveMessageAsync());
        }

        Assert.Equal(sent, received.Select(m => m.Id));
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), received.Select(m => m.Seq));
    }

    [Fact]
    public async Task Presence_shows_a_member_connected_to_the_other_node_as_online()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob", "carol");

        var presence = await alice.Http.GetFromJsonAsync<JsonElement[]>($"/api/conversations/{conversation.Id}/presence");

        var online = presence!.ToDictionary(p => p.GetProperty("user").GetString()!, p => p.GetProperty("online").GetBoolean());
        Assert.Equal(new Dictionary<string, bool> { ["alice"] = false, ["bob"] = true, ["carol"] = false }, online);
    }

    [Fact]
    public async Task Resending_with_the_same_client_message_id_saves_and_delivers_it_once()
    {
        var alice = await SignInAsync(Node1, "alice");
        var bob = await SignInAsync(Node2, "bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob");
        var id = Chat.Store.StoreIds.NewId();

        var first = await alice.PostMessageAsync(conversation.Id, "only once", id);
        var retry = await alice.PostMessageAsync(conversation.Id, "only once", id);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        var stored = Assert.Single(await bob.HistoryAsync(conversation.Id));
        Assert.Equal((id, 1L), (stored.Id, stored.Seq));

        // The retry re-broadcasts (the handler is idempotent, clients drop ids they hold); a later message proves
        // nothing else was stored or sent in between.
        var next = await alice.SendAsync(conversation.Id, "next");
        Assert.Equal(2, next.Seq);
        var frames = new List<string>();
        while (!frames.Contains(next.Id))
        {
            frames.Add((await bob.ReceiveMessageAsync()).Id);
        }

        Assert.All(frames[..^1], f => Assert.Equal(id, f));
    }

    [Fact]
    public async Task Invalid_input_gets_400_problem_details_naming_the_field()
    {
        var alice = await SignInAsync(Node1, "alice");
        var conversation = await alice.CreateConversationAsync("bob");

        var cases = new (HttpResponseMessage Response, string Field)[]
        {
            (await alice.PostMessageAsync(conversation.Id, "   "), "text"),
            (await alice.PostMessageAsync(conversation.Id, new string('x', 4001)), "text"),
            (await alice.PostMessageAsync(conversation.Id, "ok", "not-an-object-id"), "id"),
            (await alice.PostMessageAsync(conversation.Id, "from the future", MongoDB.Bson.ObjectId.GenerateNewId(DateTime.UtcNow.AddHours(1)).ToString()), "id"),
            (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/messages?after=zzz"), "after"),
            (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/messages?after={Chat.Store.StoreIds.NewId()}"), "after"),
            (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/messages?before=-1"), "before"),
            (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/messages?after=1.5"), "after"),
            (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/messages?limit=0"), "limit"),
            (await alice.Http.PostAsJsonAsync("/api/conversations", new { participants = Array.Empty<string>() }), "participants"),
            (await alice.Http.PostAsJsonAsync("/api/conversations", new { participants = new[] { "bob smith" } }), "participants"),
            (await alice.Http.PostAsJsonAsync("/api/dev/token", new { user = "" }), "user"),
        };

        foreach (var (response, field) in cases)
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(400, problem.GetProperty("status").GetInt32());
            Assert.True(problem.GetProperty("errors").TryGetProperty(field, out _), $"errors should name '{field}': {problem}");
        }

        Assert.Empty(await alice.HistoryAsync(conversation.Id));
    }

    private IEnumerable<Delivery.PushNotification> AllNotifications()
        => Node1.Notifications.Recorded.Concat(Node2.Notifications.Recorded);
}
