namespace ChatScale.Connections;

/// <summary>Why ChatScale closed a connection. The values are WebSocket close codes (RFC 6455, section 7.4.1).</summary>
public enum ConnectionCloseStatus
{
    /// <summary>1000: the connection finished normally.</summary>
    NormalClosure = 1000,

    /// <summary>1001: the server is shutting down; reconnect to another node.</summary>
    GoingAway = 1001,

    /// <summary>1003: the client sent a frame type the server does not accept.</summary>
    InvalidMessageType = 1003,

    /// <summary>1007: the client sent text that is not valid UTF-8 or JSON.</summary>
    InvalidPayloadData = 1007,

    /// <summary>1008: the client broke a policy (message rate, or read too slowly with the close policy).</summary>
    PolicyViolation = 1008,

    /// <summary>1009: the client sent a frame larger than allowed.</summary>
    MessageTooBig = 1009,

    /// <summary>1011: the server failed unexpectedly.</summary>
    InternalServerError = 1011,

    /// <summary>1012: the server restarted a part the connection relies on (its backplane subscription) and the client
    /// may have missed frames; reconnect and catch up from history.</summary>
    ServiceRestart = 1012,
}
