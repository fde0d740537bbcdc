using ChatScale.Backplane;

namespace ChatScale.Groups;

/// <summary>Argument checks shared by the group managers.</summary>
internal static class GroupIds
{
    public static void Check(string groupId, string paramName)
    {
        if (!EnvelopeCodec.CanEncodeUserId(groupId))
        {
            throw new ArgumentException($"'{paramName}' must be non-empty, well-formed and at most {EnvelopeCodec.MaxUserIdBytes} UTF-8 bytes.", paramName);
        }
    }
}
