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

        var alices = await Store.ListConversationsForAsync("alice", null, 10);

        Assert.Equal([second.Id, first.Id], alices.Select(c => c.Id));
        Assert.Empty(await Store.ListConversationsForAsync("mallory", null, 10));
        Assert.Single(await Store.ListConversationsForAsync("alice", null, 1));
    }

    [Fact]
    public async Task ListConversationsFor_pages_with_the_last_id_as_cursor()
    {
        var created = new List<Conversation>();
        for (var i = 0; i < 5; i++)
        {
            var c = NewConversation("alice", "bob");
            created.Add(c);
            await Store.CreateConversationAsync(c);
        }

        var first = await Store.ListConversationsForAsync("alice", null, 2);
        var second = await Store.ListConversationsForAsync("alice", first[^1].Id, 2);
        var third = await Store.ListConversationsForAsync("alice", second[^1].Id, 2);

        Assert.Equal(created.Select(c => c.Id).Reverse(), first.Concat(second).Concat(third).Select(c => c.Id));
        Assert.Empty(await Store.ListConversationsForAsync("alice", third[^1].Id, 2));
        Assert.Empty(await Store.ListConversationsForAsync("alice", "not-an-id", 2));
    }

    [Fact]
    public async Task AppendMessage_stores_a_new_message_with_seq_1()
    {
        var conversation = await CreateAsync("alice", "bob");
        var message = NewMessage(conversation.Id, "alice", "hello", 0);

        var result = await Store.AppendMessageAsync(message);

        Assert.True(result.Created);
        Assert.Equal(message with { Seq = 1 }, result.Message);
        Assert.Equal([result.Message], await Store.GetMessagesAsync(conversation.Id, null, null, 10));
    }

    [Fact]
    public async Task AppendMessage_ignores_the_seq_it_is_given()
    {
        var conversation = await CreateAsync("alice", "bob");

        var result = await Store.AppendMessageAsync(NewMessage(conversation.Id, "alice", "hello", 0) with { Seq = 42 });

        Assert.Equal(1, result.Message.Seq);
    }

    [Fact]
    public async Task AppendMessage_numbers_a_conversations_messages_1_to_N_independently_of_other_conversations()
    {
        var first = await CreateAsync("alice", "bob");
        var second = await CreateAsync("alice", "carol");

        var seqs = new List<(string Conversation, long Seq)>();
        for (var i = 0; i < 5; i++)
        {
            foreach (var c in i % 2 == 0 ? new[] { first, second } : [first])
            {
                seqs.Add((c.Id, (await Store.AppendMessageAsync(NewMessage(c.Id, "alice", $"m{i}", i))).Message.Seq));
            }
        }

        Assert.Equal([1, 2, 3, 4, 5], seqs.Where(s => s.Conversation == first.Id).Select(s => s.Seq));
        Assert.Equal([1, 2, 3], seqs.Where(s => s.Conversation == second.Id).Select(s => s.Seq));
        Assert.Equal([1, 2, 3, 4, 5], (await Store.GetMessagesAsync(first.Id, null, null, 10)).Select(m => m.Seq));
        Assert.Equal([1, 2, 3], (await Store.GetMessagesAsync(second.Id, null, null, 10)).Select(m => m.Seq));
    }

    [Fact]
    public async Task AppendMessage_from_200_parallel_callers_gives_distinct_contiguous_seqs_and_history_returns_each_once_in_seq_order()
    {
        const int Count = 200;
        var conversation = await CreateAsync("alice", "bob");
        var messages = Enumerable.Range(0, Count).Select(i => NewMessage(conversation.Id, i % 2 == 0 ? "alice" : "bob", $"m{i}", i)).ToList();

        var results = await Task.WhenAll(messages.Select(m => Task.Run(() => Store.AppendMessageAsync(m))));

        Assert.All(results, r => Assert.True(r.Created));
        Assert.Equal(Enumerable.Range(1, Count).Select(i => (long)i), results.Select(r => r.Message.Seq).Order());
        var history = await ReadAllAfterAsync(conversation.Id, 0, pageSize: 37);
        Assert.Equal(Enumerable.Range(1, Count).Select(i => (long)i), history.Select(m => m.Seq));
        Assert.Equal(results.Select(r => r.Message).OrderBy(m => m.Seq), history);
    }

    [Fact]
    public async Task AppendMessage_with_an_existing_id_keeps_the_first_with_its_seq_and_takes_no_new_number()
    {
        var conversation = await CreateAsync("alice", "bob");
        var first = (await Store.AppendMessageAsync(NewMessage(conversation.Id, "alice", "hello", 0))).Message;
        var second = (await Store.AppendMessageAsync(NewMessage(conversation.Id, "bob", "hi", 1))).Message;

        var retry = await Store.AppendMessageAsync(first with { Text = "hello again", SentAt = first.SentAt.AddSeconds(5), Seq = 0 });
        var third = (await Store.AppendMessageAsync(NewMessage(conversation.Id, "alice", "next", 2))).Message;

        Assert.False(retry.Created);
        Assert.Equal(first, retry.Message);
        Assert.Equal((1, 2, 3), (first.Seq, second.Seq, third.Seq));
        Assert.Equal([first, second, third], await Store.GetMessagesAsync(conversation.Id, null, null, 10));
    }

    [Fact]
    public async Task AppendMessage_of_an_id_stored_in_another_conversation_returns_that_message_and_takes_no_number_here()
    {
        var one = await CreateAsync("alice", "bob");
        var other = await CreateAsync("alice", "carol");
        var stored = (await Store.AppendMessageAsync(NewMessage(one.Id, "alice", "hello", 0))).Message;

        var misdirected = await Store.AppendMessageAsync(stored with { ConversationId = other.Id, Seq = 0 });
        var next = (await Store.AppendMessageAsync(NewMessage(other.Id, "carol", "first here", 1))).Message;

        Assert.False(misdirected.Created);
        Assert.Equal(stored, misdirected.Message);
        Assert.Equal(1, next.Seq);
    }

    [Fact]
    public async Task AppendMessage_of_one_id_from_many_callers_at_once_creates_exactly_one_and_all_get_its_seq()
    {
        var conversation = await CreateAsync("alice", "bob");
        var message = NewMessage(conversation.Id, "alice", "once", 0);

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => Store.AppendMessageAsync(message))));
        var next = (await Store.AppendMessageAsync(NewMessage(conversation.Id, "bob", "next", 1))).Message;

        var created = Assert.Single(results, r => r.Created).Message;
        Assert.Equal(message with { Seq = created.Seq }, created);
        Assert.All(results, r => Assert.Equal(created, r.Message));
        Assert.Equal([created, next], await Store.GetMessagesAsync(conversation.Id, null, null, 10));
        if (LeavesNoHoles)
        {
            Assert.Equal((1, 2), (created.Seq, next.Seq));
        }
        else
        {
            // MongoDB: callers that raced past the _id lookup took a number each and lost the insert on _id, and the
            // winner need not be the one holding 1. The unused numbers stay holes, which readers refetch across and
            // find nothing in; numbers are never reused, so the next message still comes after the stored one.
            Assert.InRange(created.Seq, 1, results.Length);
            Assert.InRange(next.Seq, created.Seq + 1, results.Length + 1);
        }
    }

    [Fact]
    public async Task AppendMessage_to_an_unknown_conversation_throws_and_stores_nothing()
    {
        var message = NewMessage(StoreIds.NewId(), "alice", "into the void", 0);

        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.AppendMessageAsync(message));

        Assert.Empty(await Store.GetMessagesAsync(message.ConversationId, null, null, 10));
    }

    [Fact]
    public async Task A_reader_catching_up_with_after_its_last_contiguous_seq_while_appends_run_in_parallel_gets_every_message_once()
    {
        const int Count = 100;
        var conversation = await CreateAsync("alice", "bob");
        var writers = Task.WhenAll(Enumerable.Range(0, Count).Select(i => Task.Run(() => Store.AppendMessageAsync(NewMessage(conversation.Id, "alice", $"m{i}", i)))));

        // The client's rule: a page may show n+1 before n is visible (two writes on MongoDB), so the cursor only ever
        // moves over numbers it holds without a gap; what lies beyond a gap is kept and refetched across next time.
        var held = new Dictionary<long, ChatMessage>();
        long last = 0;
        var fetchesAfterWriting = 0;
        bool writing;
        do
        {
            writing = !writers.IsCompleted;
            fetchesAfterWriting += writing ? 0 : 1;
            foreach (var m in await Store.GetMessagesAsync(conversation.Id, last, null, 10))
            {
                Assert.True(held.TryAdd(m.Seq, m) || held[m.Seq] == m, $"seq {m.Seq} came back as a different message");
            }

            while (held.ContainsKey(last + 1))
            {
                last++;
            }
        }
        while (writing || (last < Count && fetchesAfterWriting <= Count));

        var written = (await writers).Select(r => r.Message).OrderBy(m => m.Seq).ToList();
        Assert.Equal(Count, last);
        Assert.Equal(written, held.Values.OrderBy(m => m.Seq));
    }

    [Fact]
    public async Task GetMessages_without_cursor_returns_the_newest_page_oldest_first()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(5);

        var page = await Store.GetMessagesAsync(conversation.Id, null, null, 3);

        Assert.Equal(messages[2..], page);
    }

    [Fact]
    public async Task GetMessages_after_a_seq_returns_the_oldest_newer_messages()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(6);

        var page = await Store.GetMessagesAsync(conversation.Id, 2, null, 3);

        Assert.Equal(messages[2..5], page);
        Assert.Equal([3, 4, 5], page.Select(m => m.Seq));
        Assert.Equal(messages[..2], await Store.GetMessagesAsync(conversation.Id, 0, null, 2));
        Assert.Empty(await Store.GetMessagesAsync(conversation.Id, 6, null, 3));
        Assert.Empty(await Store.GetMessagesAsync(conversation.Id, 1000, null, 3));
    }

    [Fact]
    public async Task GetMessages_before_a_seq_returns_the_newest_older_messages_oldest_first()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(6);

        var page = await Store.GetMessagesAsync(conversation.Id, null, 5, 2);

        Assert.Equal(messages[2..4], page);
        Assert.Empty(await Store.GetMessagesAsync(conversation.Id, null, 1, 2));
        Assert.Equal(messages[4..], await Store.GetMessagesAsync(conversation.Id, null, 1000, 2));
    }

    [Fact]
    public async Task GetMessages_between_two_seqs_returns_what_lies_between()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(6);

        Assert.Equal(messages[1..4], await Store.GetMessagesAsync(conversation.Id, 1, 5, 10));
        Assert.Equal(messages[1..3], await Store.GetMessagesAsync(conversation.Id, 1, 5, 2));
        Assert.Empty(await Store.GetMessagesAsync(conversation.Id, 3, 4, 10));
    }

    [Fact]
    public async Task GetMessages_pages_forward_through_the_whole_history_with_after_without_gaps_or_repeats()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(23);

        var seen = await ReadAllAfterAsync(conversation.Id, 0, pageSize: 5);

        Assert.Equal(messages, seen);
        Assert.Equal(Enumerable.Range(1, 23).Select(i => (long)i), seen.Select(m => m.Seq));
    }

    [Fact]
    public async Task GetMessages_pages_back_through_the_whole_history_with_before_without_gaps_or_repeats()
    {
        var (conversation, messages) = await ConversationWithMessagesAsync(7);

        var seen = new List<ChatMessage>();
        long? before = null;
        while (true)
        {
            var page = await Store.GetMessagesAsync(conversation.Id, null, before, 3);
            if (page.Count == 0)
            {
                break;
            }

            seen.InsertRange(0, page);
            before = page[0].Seq;
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
        Assert.Equal(messages, await Store.GetMessagesAsync(conversation.Id, 0, null, 10));
        Assert.Empty(await Store.GetMessagesAsync(StoreIds.NewId(), null, null, 10));
        Assert.Empty(await Store.GetMessagesAsync("not-an-id", 0, null, 10));
    }

    /// <summary>Whether the store never leaves an unused seq (true in memory; MongoDB can, see IChatStore).</summary>
    protected virtual bool LeavesNoHoles => false;

    private async Task<List<ChatMessage>> ReadAllAfterAsync(string conversationId, long after, int pageSize)
    {
        var seen = new List<ChatMessage>();
        while (true)
        {
            var page = await Store.GetMessagesAsync(conversationId, after, null, pageSize);
            seen.AddRange(page);
            if (page.Count < pageSize)
            {
                return seen;
            }

            after = page[^1].Seq;
        }
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
            messages[i] = (await Store.AppendMessageAsync(NewMessage(conversation.Id, i % 2 == 0 ? "alice" : "bob", $"message {i}", i))).Message;
            Assert.Equal(i + 1, messages[i].Seq);
        }

        return (conversation, messages);
    }

    private static Conversation NewConversation(params string[] participants)
        => new(StoreIds.NewId(), "title " + participants[0], participants, Start);

    private static ChatMessage NewMessage(string conversationId, string sender, string text, int second)
        => new(StoreIds.NewId(), conversationId, sender, text, Start.AddSeconds(second).AddMilliseconds(123));
}
