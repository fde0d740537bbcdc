namespace ChatScale.Samples.Chat.Store;

/// <summary>The outcome of <see cref="IChatStore.AppendMessageAsync"/>.</summary>
/// <param name="Message">The stored message: the new one, or the one already stored under the same id.</param>
/// <param name="Created">False when a message with that id already existed (a retried send).</param>
public sealed record AppendResult(ChatMessage Message, bool Created);
