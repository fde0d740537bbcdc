using System.Text.Json;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

public sealed class BroadcastMessageHandlerTests
{
    private readonly InMemoryChatStore _store = new();
    private readonly RecordingBroadcaster _broadcaster = new();
    private readonly RecordingPushNotifier _notifier = new();

    [Fact]
    public async Task Handling_the_same_job_twice_publishes_the_same_frame_and_notifies_each_offline_user_once()
    {
        var conversation = new Conversation(StoreIds.NewId(), "t", ["alice", "bob", "carol"], DateTimeOffset.UnixEpoch);
        await _store.CreateConversationAsync(conversation);
        var message = new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "hi", DateTimeOffset.UnixEpoch);
        var handler = new BroadcastMessageHandler(_store, _broadcaster, _notifier, NullLogger<BroadcastMessageHandler>.Instance);
        var job = new BroadcastMessageJob(message);

        await handler.HandleAsync(job, Context(1), CancellationToken.None);
        await handler.HandleAsync(job, Context(2), CancellationToken.None);

        Assert.Equal(2, _broadcaster.Published.Count);
        Assert.All(_broadcaster.Published, p => Assert.Equal(["alice", "bob", "carol"], p.Users));
        Assert.Equal(_broadcaster.Published[0].Payload, _broadcaster.Published[1].Payload);
        var notified = Assert.Single(_notifier.Recorded);
        Assert.Equal(("carol", message.Id), (notified.UserId, notified.MessageId));
    }

    [Fact]
    public async Task The_frame_is_the_message_with_its_seq_so_clients_can_spot_a_gap()
    {
        var conversation = new Conversation(StoreIds.NewId(), "t", ["alice", "bob"], DateTimeOffset.UnixEpoch);
        await _store.CreateConversationAsync(conversation);
        var message = new ChatMessage(StoreIds.NewId(), conversation.Id, "alice", "hi", DateTimeOffset.UnixEpoch, Seq: 41);
        var handler = new BroadcastMessageHandler(_store, _broadcaster, _notifier, NullLogger<BroadcastMessageHandler>.Instance);

        await handler.HandleAsync(new BroadcastMessageJob(message), Context(1), CancellationToken.None);

        using var frame = JsonDocument.Parse(Assert.Single(_broadcaster.Published).Payload);
        Assert.Equal("message", frame.RootElement.GetProperty("type").GetString());
        Assert.Equal(41, frame.RootElement.GetProperty("message").GetProperty("seq").GetInt64());
        Assert.Equal(message, frame.RootElement.GetProperty("message").Deserialize<ChatMessage>(ChatEvents.Json));
    }

    [Fact]
    public async Task A_job_for_a_deleted_conversation_completes_without_publishing()
    {
        var handler = new BroadcastMessageHandler(_store, _broadcaster, _notifier, NullLogger<BroadcastMessageHandler>.Instance);
        var message = new ChatMessage(StoreIds.NewId(), StoreIds.NewId(), "alice", "hi", DateTimeOffset.UnixEpoch);

        await handler.HandleAsync(new BroadcastMessageJob(message), Context(1), CancellationToken.None);

        Assert.Empty(_broadcaster.Published);
    }

    private static JobContext Context(int attempt) => new("job-1", BroadcastMessageJob.JobName, "c", attempt, DateTimeOffset.UnixEpoch);

    /// <summary>Bob online, everyone else offline.</summary>
    private sealed class RecordingBroadcaster : IMessageBroadcaster
    {
        public List<(string[] Users, byte[] Payload)> Published { get; } = [];

        public ValueTask<PublishResult> PublishAsync(IReadOnlyList<string> userIds, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
        {
            Published.Add(([.. userIds], payload.ToArray()));
            return ValueTask.FromResult(new PublishResult(Guid.CreateVersion7(), 1, [.. userIds.Where(u => u != "bob")]));
        }

        public ValueTask<Guid> PublishToAllAsync(ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
            => throw new NotSupportedException();
    }
}
