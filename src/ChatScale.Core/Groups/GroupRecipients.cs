using ChatScale.Connections;

namespace ChatScale.Groups;

/// <summary>
/// One group's recipients on this node at one moment: its members (user ids) and the single connections added to it
/// (connection-scoped membership) whose users are not members, so no connection receives a message twice.
/// </summary>
/// <remarks>
/// Immutable: a group manager builds it once after each change and every publish delivers to it without a lock and
/// without copying the member list. Public so that every backplane package delivers to a group the same way.
/// </remarks>
public sealed class GroupRecipients
{
    private readonly string[] _users;
    private readonly ClientConnection[] _connections;

    private GroupRecipients(string[] users, ClientConnection[] connections)
    {
        _users = users;
        _connections = connections;
    }

    /// <summary>No recipient.</summary>
    public static GroupRecipients Empty { get; } = new([], []);

    /// <summary>The members (user ids), in the order of the set they were built from.</summary>
    public IReadOnlyList<string> Users => _users;

    /// <summary>The connections added to the group on their own, without the ones whose user is a member.</summary>
    public IReadOnlyList<ClientConnection> Connections => _connections;

    /// <summary>Builds the recipients of a group from its members and its connection-scoped members.</summary>
    /// <param name="members">The group's members on this node (or all of them, in memory).</param>
    /// <param name="connections">The connections added to the group on their own.</param>
    /// <returns>The recipients.</returns>
    public static GroupRecipients Create(IReadOnlySet<string> members, IEnumerable<ClientConnection> connections)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(connections);
        var extra = new List<ClientConnection>();
        foreach (var connection in connections)
        {
            if (!members.Contains(connection.UserId))
            {
                extra.Add(connection);
            }
        }

        return members.Count == 0 && extra.Count == 0 ? Empty : new GroupRecipients([.. members], [.. extra]);
    }

    /// <summary>
    /// Queues <paramref name="payload"/> on every connection this node holds of each member, and on each connection
    /// added on its own; the connections of <paramref name="exceptUserId"/> are skipped. Never waits on a socket.
    /// </summary>
    /// <param name="connections">This node's connections.</param>
    /// <param name="payload">The frame, shared by every queue (not copied).</param>
    /// <param name="exceptUserId">A user not to deliver to, or <see langword="null"/>.</param>
    /// <returns>How many connections the frame was queued on.</returns>
    public int Deliver(LocalConnections connections, ReadOnlyMemory<byte> payload, string? exceptUserId = null)
    {
        ArgumentNullException.ThrowIfNull(connections);
        var users = _users;
        if (exceptUserId is not null && Array.IndexOf(users, exceptUserId) >= 0)
        {
            users = Array.FindAll(users, u => !string.Equals(u, exceptUserId, StringComparison.Ordinal));
        }

        var queued = users.Length == 0 ? 0 : connections.Deliver(users, payload);
        foreach (var connection in _connections)
        {
            if (!string.Equals(connection.UserId, exceptUserId, StringComparison.Ordinal) && connection.TryEnqueue(payload))
            {
                queued++;
            }
        }

        return queued;
    }
}
