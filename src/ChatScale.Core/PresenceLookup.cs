namespace ChatScale;

/// <summary>The answer of <see cref="IConnectionRegistry.LocateAsync"/>: who is online, and where.</summary>
public sealed class PresenceLookup
{
    private static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> NoNodes = new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>Creates a lookup result.</summary>
    /// <param name="usersByNode">For each hosting node, the looked-up users it hosts (a user on two nodes appears under both).</param>
    /// <param name="offlineUsers">Looked-up users with no live connection.</param>
    public PresenceLookup(IReadOnlyDictionary<string, IReadOnlyList<string>> usersByNode, IReadOnlyList<string> offlineUsers)
    {
        ArgumentNullException.ThrowIfNull(usersByNode);
        ArgumentNullException.ThrowIfNull(offlineUsers);
        UsersByNode = usersByNode;
        OfflineUsers = offlineUsers;
    }

    /// <summary>A lookup in which every one of <paramref name="userIds"/> is offline.</summary>
    /// <param name="userIds">The users.</param>
    /// <returns>The lookup.</returns>
    public static PresenceLookup AllOffline(IReadOnlyList<string> userIds) => new(NoNodes, userIds);

    /// <summary>For each node hosting at least one looked-up user, those users.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> UsersByNode { get; }

    /// <summary>The looked-up users with no live connection anywhere.</summary>
    public IReadOnlyList<string> OfflineUsers { get; }
}
