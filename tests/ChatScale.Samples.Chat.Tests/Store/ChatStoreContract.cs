using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Tests.Store;

/// <summary>
/// What every <see cref="IChatStore"/> must do. Run against the in-memory store always, and against MongoDB (CongoDB,
/// or the real server named by CHATSCALE_TEST_MONGO).
/// </summary>
public abstract class ChatStoreContract : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = StoreIds.Truncate(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    protected IChatStore Store { get; private set; } = null!;

    protected abstract Task<IChatStore> CreateStoreAsync();

    public async Task InitializeAsync() => Store = await CreateStoreAsync();

    public virtual Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task CreateConversation_then_Get_returns_it_with_its_participants_in_order()
    {
        var created = NewConversation("alice", "bob", "carol");
        await Store.CreateConversationAsync(created);

        var read = await Store.GetConversationAsync(created.Id);

        Assert.NotNull(read);
        Assert.Equal(created.Id, read.Id);
        Assert.Equal(created.Title, read.Title);
        Assert.Equal(["alice", "bob", "carol"], read.Participants);
        Assert.Equal(created.CreatedAt, read.CreatedAt);
    }

    [Theory]
    [InlineData("0123456789abcdef01234567")]
    [InlineData("not-an-id")]
    [InlineData("")]
    public async Task GetConversation_of_an_unknown_or_malformed_id_returns_null(string id)
        => Assert.Null(await Store.GetConversationAsync(id));

    [Fact]
    public async Task ListConversationsFor_returns_only_the_users_conversations_newest_first()
    {
        var first = NewConversation("alice", "bob");
        var second = NewConversation("carol", "alice");
        var others = NewConversation("bob", "carol");
        foreach (var c in new[] { first, second, others })
        {
            await Store.CreateConversationAsync(c);
        }

        var alices = await Store.ListConversationsForAsync("alice", 10);

        Assert.Equal([second.Id, first.Id], alices.Select(c => c.Id));
        Assert.Empty(await Store.ListConversationsForAsync("mallory", 10));
        Assert.Single(await Store.ListConversationsForAsync("alice", 1));
    }

    [Fact]
    public async Task AppendMessage_stores_a_new_message()
    {
        var conversation = await CreateAsync("alice", "bob");
        var message = NewMessage(conversation.Id, "alice", "hello", 0);

        var result = await Store.AppendMessageAsync(message);

        Assert.True(result.Created);
        Assert.Equal(message, result.Message);
        Assert.Equal([message], await Store.GetMessagesAsync(conversation.Id, null, null, 10));
    }

    [Fact]
    public async Task AppendMessage_with_an_existing_id_keeps_the_first_and_returns_it()
    {
        var conversation = await CreateAsync("alice", "bob");
        var first = NewMessage(conversation.Id, "alice", "hello", 0);
        await Store.AppendMessageAsync(first);

        var retry = await Store.AppendMessageAsync(first with { Text = "hello again", SentAt = first.SentAt.AddSeconds(5) });

        Assert.False(retry.Created);
        Assert.Equal(first, retry.Message);
        Assert.Equal([first], await Store.GetMessagesAsync(conversation.Id, null, null, 10));
    }

    [Fact]
    public async Task AppendMessage_of_one_id_from_many_callers_at_once_creates_exactly_one()
    {
        var conversation = await CreateAsync("alice", "bob");
        var message = NewMessage(conversation.Id, "alice", "once", 0);

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => Store.AppendMessageAsync(message))));

        Assert.Single(results, r => r.Created);
        Assert.All(results, r => Assert.Equal(message, r.Message));
        Assert.Single(await Store.GetMessagesAsync(conversation.Id, null, null, 10));
    }

    [Fact]
    public async Task GetMessages_without_cursor_returns_the_newest_page_oldest_first()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(5);

        var page = await Store.GetMessagesAsync(conversation.Id, null, null, 3);

        Assert.Equal(messages[2..].Select(m => m.Id), page.Select(m => m.Id));
    }

    [Fact]
    public async Task GetMessages_after_a_cursor_returns_the_oldest_newer_messages()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(6);

        var page = await Store.GetMessagesAsync(conversation.Id, messages[1].Id, null, 3);

        Assert.Equal(messages[2..5].Select(m => m.Id), page.Select(m => m.Id));
        Assert.Empty(await Store.GetMessagesAsync(conversation.Id, messages[5].Id, null, 3));
    }

    [Fact]
    public async Task GetMessages_before_a_cursor_returns_the_newest_older_messages_oldest_first()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(6);

        var page = await Store.GetMessagesAsync(conversation.Id, null, messages[4].Id, 2);

        Assert.Equal(messages[2..4].Select(m => m.Id), page.Select(m => m.Id));
        Assert.Empty(await Store.GetMessagesAsync(conversation.Id, null, messages[0].Id, 2));
    }

    [Fact]
    public async Task GetMessages_between_two_cursors_returns_what_lies_between()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(6);

        var page = await Store.GetMessagesAsync(conversation.Id, messages[0].Id, messages[4].Id, 10);

        Assert.Equal(messages[1..4].Select(m => m.Id), page.Select(m => m.Id));
    }

    [Fact]
    public async Task GetMessages_pages_back_through_the_whole_history_without_gaps_or_repeats()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(7);

        var seen = new List<ChatMessage>();
        string? before = null;
        while (true)
        {
            var page = await Store.GetMessagesAsync(conversation.Id, null, before, 3);
            if (page.Count == 0)
            {
                break;
            }

            seen.InsertRange(0, page);
            before = page[0].Id;
        }

        Assert.Equal(messages, seen);
    }

    [Fact]
    public async Task GetMessages_returns_only_the_conversations_own_messages()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(2);
        var other = await CreateAsync("alice", "carol");
        await Store.AppendMessageAsync(NewMessage(other.Id, "carol", "elsewhere", 10));

        Assert.Equal(messages, await Store.GetMessagesAsync(conversation.Id, null, null, 10));
        Assert.Empty(await Store.GetMessagesAsync(StoreIds.NewId(), null, null, 10));
    }

    private async Task<Conversation> CreateAsync(params string[] participants)
    {
        var conversation = NewConversation(participants);
        await Store.CreateConversationAsync(conversation);
        return conversation;
    }

    private async Task<(Conversation Conversation, ChatMessage[] Messages)> ConversationWithMessagesAsync(int count)
    {
        var conversation = await CreateAsync("alice", "bob");
        var messages = new ChatMessage[count];
        for (var i = 0; i < count; i++)
        {
            messages[i] = NewMessage(conversation.Id, i % 2 == 0 ? "alice" : "bob", $"message {i}", i);
            await Store.AppendMessageAsync(messages[i]);
        }

        return (conversation, messages);
    }

    // ObjectIds made in one process increase, so messages made one after another are in id order.
    private static Conversation NewConversation(params string[] participants)
        => new(StoreIds.NewId(), "title " + participants[0], participants, Start);

    private static ChatMessage NewMessage(string conversationId, string sender, string text, int second)
        => new(StoreIds.NewId(), conversationId, sender, text, Start.AddSeconds(second).AddMilliseconds(123));
}
