namespace ChatScale.AspNetCore.Internal;

/// <summary>How a connection's receive loop ended.</summary>
internal enum ReceiveEnd
{
    /// <summary>The client sent a close frame.</summary>
    ClientClosed,

    /// <summary>The client broke a rule (or the handler failed): the server closes with <see cref="ReceiveOutcome.Status"/>.</summary>
    Violation,

    /// <summary>The socket failed or the request was aborted: no close handshake is possible.</summary>
    Aborted,
}
