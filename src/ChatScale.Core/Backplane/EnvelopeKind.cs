namespace ChatScale.Backplane;

/// <summary>What an envelope asks the receiving node to do.</summary>
public enum EnvelopeKind : byte
{
    /// <summary>Deliver the payload to the listed recipients' connections on the receiving node.</summary>
    Users = 1,

    /// <summary>Deliver the payload to every connection on the receiving node; the recipient list is empty.</summary>
    All = 2,
}
