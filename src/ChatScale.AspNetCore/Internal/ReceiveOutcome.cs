using ChatScale.Connections;

namespace ChatScale.AspNetCore.Internal;

/// <summary>How a connection's receive loop ended, with the close status the server decided, if any.</summary>
internal readonly record struct ReceiveOutcome(ReceiveEnd Outcome, ConnectionCloseStatus Status, string Reason, Exception? Exception);
