namespace ChatScale.Samples.Chat.Api;

/// <summary>
/// What one user may ask of the sample's API, bound from the <c>Limits</c> configuration section. Limits are per
/// user and per node (ASP.NET Core's in-memory rate limiter): a user whose requests spread over N nodes gets N times
/// the rate; a shared store (Redis) for the limiter is the step beyond a sample.
/// </summary>
public sealed class ChatLimitsOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Limits";

    /// <summary>Messages per second one user may post on average (a token bucket); past it 429 with Retry-After. Default 5.</summary>
    public int MessagesPerSecond { get; set; } = 5;

    /// <summary>Messages one user may post in a burst above <see cref="MessagesPerSecond"/>. Default 20.</summary>
    public int MessageBurst { get; set; } = 20;

    /// <summary>Conversations one user may create per minute on average; past it 429 with Retry-After. Default 6.</summary>
    public int ConversationsPerMinute { get; set; } = 6;

    /// <summary>Conversations one user may create in a burst. Default 20.</summary>
    public int ConversationBurst { get; set; } = 20;

    /// <summary>
    /// The largest request body of the API's POST endpoints, in bytes: a bigger one is refused with 413 before it is
    /// read (from its Content-Length; a chunked body is cut off at this size). Default 16 KiB: a message is at most
    /// 4,000 characters (12,000 UTF-8 bytes, plus JSON).
    /// </summary>
    public long MaxBodyBytes { get; set; } = 16 * 1024;
}
