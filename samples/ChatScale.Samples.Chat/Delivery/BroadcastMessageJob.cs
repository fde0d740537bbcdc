using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Delivery;

/// <summary>
/// The background job enqueued for every saved message, with the conversation id as ordering key so a conversation's
/// messages are published in the order they were accepted.
/// </summary>
/// <param name="Message">The saved message (small, so it travels in the job instead of being read back).</param>
public sealed record BroadcastMessageJob(ChatMessage Message)
{
    /// <summary>The stable job type name, stored with jobs by durable dispatchers.</summary>
    public const string JobName = "chat.broadcast-message";
}
