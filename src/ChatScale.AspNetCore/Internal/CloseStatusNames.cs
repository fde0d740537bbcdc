using ChatScale.Connections;

namespace ChatScale.AspNetCore.Internal;

/// <summary>The metric tag each close status is counted under.</summary>
internal static class CloseStatusNames
{
    public static string Describe(ConnectionCloseStatus status) => status switch
    {
        ConnectionCloseStatus.GoingAway => "going_away",
        ConnectionCloseStatus.InvalidMessageType => "invalid_message_type",
        ConnectionCloseStatus.InvalidPayloadData => "invalid_payload",
        ConnectionCloseStatus.PolicyViolation => "policy_violation",
        ConnectionCloseStatus.MessageTooBig => "message_too_big",
        ConnectionCloseStatus.InternalServerError => "server_error",
        _ => "closed",
    };
}
