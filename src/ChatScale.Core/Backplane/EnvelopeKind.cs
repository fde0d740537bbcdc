namespace ChatScale.Backplane;

/// <summary>What an envelope asks the receiving node to do.</summary>
public enum EnvelopeKind : byte
{
    /// <summary>Deliver the payload to the listed recipients' connections on the receiving node.</summary>
    Users = 1,

    /// <summary>Deliver the payload to every connection on the receiving node; the recipient list is empty.</summary>
    All = 2,

    /// <summary>
    /// Deliver the payload to the receiving node's connections of the members of one group. The recipient list holds
    /// the group id and, optionally, one user to skip; the receiving node knows its members itself.
    /// </summary>
    Group = 3,
}
