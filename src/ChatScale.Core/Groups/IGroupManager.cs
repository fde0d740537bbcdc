namespace ChatScale.Groups;

/// <summary>
/// Named groups of users (a conversation's participants, a channel's subscribers) kept by the backplane, so membership
/// survives reconnects, node moves and node restarts; and publishing one payload to every online member of a group.
/// </summary>
/// <remarks>
/// <para>Membership is by user, not by connection: every connection of a member, on any node, receives the group's
/// messages, including connections opened after the user was added and connections that were already open. For a
/// transient subscription of one connection (a page that has a conversation open), see
/// <see cref="AddConnectionToGroupAsync"/>.</para>
/// <para><b>Cost.</b> A publish costs the same backplane work whatever the group's size: the member list is never
/// loaded or sent per message. The same at-most-once guarantee and per-publisher ordering as
/// <see cref="IMessageBroadcaster"/> apply.</para>
/// <para>Group and user ids are non-empty, well-formed strings of at most 1,024 UTF-8 bytes
/// (<see cref="Backplane.EnvelopeCodec.CanEncodeUserId"/>).</para>
/// </remarks>
/// <example>
/// <code>
/// await groups.AddToGroupAsync("room:lobby", "alice", ct);
/// var result = await groups.PublishToGroupAsync("room:lobby", """{"text":"hi"}"""u8.ToArray(), exceptUserId: "bob", ct);
/// var page = await groups.GetMembersAsync("room:lobby", cursor: null, count: 100, ct);
/// var online = await groups.CountOnlineMembersAsync("room:lobby", ct); // cost grows with the group: not per message
/// await groups.AddConnectionToGroupAsync("conversation:42", connection.ConnectionId, ct); // this socket, until it closes
/// </code>
/// </example>
public interface IGroupManager
{
    /// <summary>Adds <paramref name="userId"/> to <paramref name="groupId"/>; takes effect at once for the user's open connections.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> when the user was not a member before.</returns>
    ValueTask<bool> AddToGroupAsync(string groupId, string userId, CancellationToken cancellationToken = default);

    /// <summary>Removes <paramref name="userId"/> from <paramref name="groupId"/>; the user's connections stop receiving the group's messages.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> when the user was a member.</returns>
    ValueTask<bool> RemoveFromGroupAsync(string groupId, string userId, CancellationToken cancellationToken = default);

    /// <summary>Reads one page of the group's members (online or not), for example to send push notifications.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="cursor">The <see cref="GroupMembersPage.NextCursor"/> of the previous page, or <see langword="null"/> to start.</param>
    /// <param name="count">About how many members to return (a hint; a page may hold more or fewer).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page. A member present for the whole scan is returned at least once.</returns>
    ValueTask<GroupMembersPage> GetMembersAsync(string groupId, string? cursor = null, int count = 100, CancellationToken cancellationToken = default);

    /// <summary>Counts the group's members (online or not), without reading them.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The number of members.</returns>
    ValueTask<long> CountMembersAsync(string groupId, CancellationToken cancellationToken = default);

    /// <summary>Counts the group's members that are online: connected to at least one live node.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The number of online members; a member connected to several nodes counts once.</returns>
    /// <remarks>
    /// <b>Cost: proportional to the group's size</b>, unlike a publish. On Redis the members are read in pages of 1,000
    /// (<c>SSCAN</c>) and each page is one presence lookup (one pipelined <c>HVALS</c> per member), so a 10,000-member
    /// group costs 20 round trips and about 10,000 small reads: fine for a member list or a dashboard refreshed every
    /// few seconds, too much to run with every message. In memory it checks each member against this node's connections.
    /// </remarks>
    ValueTask<long> CountOnlineMembersAsync(string groupId, CancellationToken cancellationToken = default);

    /// <summary>The groups <paramref name="userId"/> belongs to.</summary>
    /// <param name="userId">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The group ids, in no particular order.</returns>
    ValueTask<IReadOnlyList<string>> GetGroupsAsync(string userId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Adds one connection, not its user, to <paramref name="groupId"/> until it closes: a transient subscription, such
    /// as a page that has a conversation open. It receives the group's messages like a member's connection would.
    /// </summary>
    /// <param name="groupId">The group.</param>
    /// <param name="connectionId">The connection (<c>ChatScaleConnectionContext.ConnectionId</c>, <see cref="Connections.ClientConnection.ConnectionId"/>).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>
    /// <see langword="true"/> when added; <see langword="false"/> when it was already in the group or is not open on
    /// this node.
    /// </returns>
    /// <remarks>
    /// Call it on the node that holds the connection, for example from an <c>IClientMessageHandler</c>. It is kept by
    /// that node only (nothing is stored in the backplane but the node's subscription to the group) and ends when the
    /// connection closes: it is not a membership, so it is not listed, counted, or returned by
    /// <see cref="GetGroupsAsync"/>. A connection whose user is also a member receives each message once.
    /// </remarks>
    ValueTask<bool> AddConnectionToGroupAsync(string groupId, string connectionId, CancellationToken cancellationToken = default);

    /// <summary>Removes a connection added by <see cref="AddConnectionToGroupAsync"/> before it closes.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="connectionId">The connection.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns><see langword="true"/> when it was in the group on this node.</returns>
    ValueTask<bool> RemoveConnectionFromGroupAsync(string groupId, string connectionId, CancellationToken cancellationToken = default);

    /// <summary>Publishes <paramref name="payload"/> to every connection of every online member of <paramref name="groupId"/>.</summary>
    /// <param name="groupId">The group.</param>
    /// <param name="payload">The frame, serialized once by the caller and shared by every recipient (do not modify it afterwards).</param>
    /// <param name="exceptUserId">A member not to deliver to (typically the sender), or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels the publish (not deliveries already handed over).</param>
    /// <returns>
    /// The message id and <see cref="PublishResult.TargetedNodes"/>: how many nodes hosting a member received it.
    /// <see cref="PublishResult.OfflineUsers"/> is always empty: finding offline members would cost a member scan per
    /// message; page through <see cref="GetMembersAsync"/> when they are needed.
    /// </returns>
    /// <exception cref="BackplaneUnavailableException">The backplane could not be reached or did not confirm; nothing was
    /// published unless <see cref="BackplaneUnavailableException.MayHaveSucceeded"/> is true.</exception>
    ValueTask<PublishResult> PublishToGroupAsync(string groupId, ReadOnlyMemory<byte> payload, string? exceptUserId = null, CancellationToken cancellationToken = default);
}
