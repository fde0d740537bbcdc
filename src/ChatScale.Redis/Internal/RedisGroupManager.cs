using System.Diagnostics.Metrics;
using System.Globalization;
using ChatScale.Backplane;
using ChatScale.Groups;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal;

/// <summary>
/// <see cref="IGroupManager"/> on Redis: membership in two sets per pair (the group's members, the user's groups),
/// each key in its own slot; a publish is one <c>PUBLISH</c> (or <c>SPUBLISH</c>) of a group envelope on the group's
/// channel, which only nodes hosting an online member subscribe to (<see cref="GroupNode"/>).
/// </summary>
/// <remarks>
/// Costs: add or remove is <c>SADD</c>/<c>SREM</c> on two keys (two slots, not one atomic step: the member set is
/// written first and is the truth for listing and counting), a presence lookup of the user, one <c>PUBLISH</c> of the
/// change and a wait (bounded by <see cref="AckTimeout"/>) for the acknowledgement of each node hosting the user.
/// A publish is one command whatever the group's size; its envelope holds the payload, the group id and the optional
/// excluded user. Listing is <c>SSCAN</c>, counting <c>SCARD</c>; counting online members pages through the set and
/// looks each page up in presence (cost proportional to the group's size). A connection-scoped member is kept by its
/// node alone: only that node's subscription to the group's channel is visible in Redis.
/// </remarks>
internal sealed class RedisGroupManager : IGroupManager, IDisposable
{
    internal static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(5);

    // Members read per SSCAN when counting online members: one presence lookup of this many users per page.
    private const int OnlineCountPage = 1000;

    private readonly IConnectionMultiplexer _multiplexer;
    private readonly IConnectionRegistry _registry;
    private readonly GroupNode _node;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _publishes;
    private readonly Counter<long> _membershipChanges;

    public RedisGroupManager(IConnectionMultiplexer multiplexer, IConnectionRegistry registry, GroupNode node, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
    {
        _multiplexer = multiplexer;
        _registry = registry;
        _node = node;
        _logger = (ILogger?)loggerFactory?.CreateLogger<RedisGroupManager>() ?? NullLogger.Instance;
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(RedisMetrics.MeterName) ?? new Meter(RedisMetrics.MeterName);
        _publishes = _meter.CreateCounter<long>("chatscale.groups.publishes", "{message}", "Messages published to a group.");
        _membershipChanges = _meter.CreateCounter<long>("chatscale.groups.members_changed", "{change}", "Users added to or removed from a group.");
    }

    public ValueTask<bool> AddToGroupAsync(string groupId, string userId, CancellationToken cancellationToken = default)
        => ChangeAsync(joined: true, groupId, userId, cancellationToken);

    public ValueTask<bool> RemoveFromGroupAsync(string groupId, string userId, CancellationToken cancellationToken = default)
        => ChangeAsync(joined: false, groupId, userId, cancellationToken);

    public async ValueTask<GroupMembersPage> GetMembersAsync(string groupId, string? cursor = null, int count = 100, CancellationToken cancellationToken = default)
    {
        Check(groupId, nameof(groupId));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        var start = cursor is null ? 0UL : ulong.Parse(cursor, NumberStyles.None, CultureInfo.InvariantCulture);
        var reply = await Run(() => _multiplexer.GetDatabase().ExecuteAsync("SSCAN", [_node.Keys.GroupMembers(groupId), start, "COUNT", count]), cancellationToken).ConfigureAwait(false);
        var parts = (RedisResult[])reply!;
        var next = (string)parts[0]!;
        var values = (RedisResult[])parts[1]!;
        var members = new string[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            members[i] = (string)values[i]!;
        }

        return new GroupMembersPage(members, next == "0" ? null : next);
    }

    public async ValueTask<long> CountMembersAsync(string groupId, CancellationToken cancellationToken = default)
    {
        Check(groupId, nameof(groupId));
        return await Run(() => _multiplexer.GetDatabase().SetLengthAsync(_node.Keys.GroupMembers(groupId)), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<long> CountOnlineMembersAsync(string groupId, CancellationToken cancellationToken = default)
    {
        Check(groupId, nameof(groupId));

        // SSCAN may return a member twice (the set rehashing mid-scan): count distinct online users.
        var online = new HashSet<string>(StringComparer.Ordinal);
        string? cursor = null;
        do
        {
            var page = await GetMembersAsync(groupId, cursor, OnlineCountPage, cancellationToken).ConfigureAwait(false);
            if (page.Members.Count > 0)
            {
                var presence = await _registry.LocateAsync(page.Members, cancellationToken).ConfigureAwait(false);
                foreach (var users in presence.UsersByNode.Values)
                {
                    online.UnionWith(users);
                }
            }

            cursor = page.NextCursor;
        }
        while (cursor is not null);

        return online.Count;
    }

    public async ValueTask<IReadOnlyList<string>> GetGroupsAsync(string userId, CancellationToken cancellationToken = default)
    {
        Check(userId, nameof(userId));
        var values = await Run(() => _multiplexer.GetDatabase().SetMembersAsync(_node.Keys.UserGroups(userId)), cancellationToken).ConfigureAwait(false);
        var groups = new string[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            groups[i] = (string)values[i]!;
        }

        return groups;
    }

    public async ValueTask<PublishResult> PublishToGroupAsync(string groupId, ReadOnlyMemory<byte> payload, string? exceptUserId = null, CancellationToken cancellationToken = default)
    {
        Check(groupId, nameof(groupId));
        if (exceptUserId is not null)
        {
            Check(exceptUserId, nameof(exceptUserId));
        }

        cancellationToken.ThrowIfCancellationRequested();
        var messageId = Guid.CreateVersion7();
        string[] ids = exceptUserId is null ? [groupId] : [groupId, exceptUserId];
        var envelope = EnvelopeCodec.Encode(EnvelopeKind.Group, _node.NodeId, messageId, ids, payload.Span);
        var receivers = await Run(() => _multiplexer.GetSubscriber().PublishAsync(_node.Keys.GroupChannel(groupId), envelope), cancellationToken).ConfigureAwait(false);
        _publishes.Add(1);
        return new PublishResult(messageId, (int)Math.Min(receivers, int.MaxValue), []);
    }

    public async ValueTask<bool> AddConnectionToGroupAsync(string groupId, string connectionId, CancellationToken cancellationToken = default)
    {
        Check(groupId, nameof(groupId));
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        return await Run(() => _node.AddConnectionAsync(groupId, connectionId).AsTask(), cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<bool> RemoveConnectionFromGroupAsync(string groupId, string connectionId, CancellationToken cancellationToken = default)
    {
        Check(groupId, nameof(groupId));
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        return await Run(() => _node.RemoveConnectionAsync(groupId, connectionId).AsTask(), cancellationToken).ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private async ValueTask<bool> ChangeAsync(bool joined, string groupId, string userId, CancellationToken cancellationToken)
    {
        Check(groupId, nameof(groupId));
        Check(userId, nameof(userId));
        var db = _multiplexer.GetDatabase();
        var members = _node.Keys.GroupMembers(groupId);
        var groups = _node.Keys.UserGroups(userId);
        var changed = await Run(() => joined ? db.SetAddAsync(members, userId) : db.SetRemoveAsync(members, userId), cancellationToken).ConfigureAwait(false);
        await Run(() => joined ? db.SetAddAsync(groups, groupId) : db.SetRemoveAsync(groups, groupId), cancellationToken).ConfigureAwait(false);
        if (changed)
        {
            _membershipChanges.Add(1);
        }

        // Tell the nodes hosting the user, and wait until each has applied it: the group's next message follows the change.
        var presence = await _registry.LocateAsync([userId], cancellationToken).ConfigureAwait(false);
        var change = new GroupChange(joined, Guid.CreateVersion7(), _node.NodeId, groupId, userId);
        var waiter = presence.UsersByNode.Count > 0 ? _node.ExpectAcks(change.ChangeId, presence.UsersByNode.Keys) : null;
        try
        {
            await Run(() => _multiplexer.GetSubscriber().PublishAsync(_node.Keys.GroupChangesChannel, change.Encode()), cancellationToken).ConfigureAwait(false);
            if (waiter is not null)
            {
                try
                {
                    await waiter.Done.WaitAsync(AckTimeout, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    // A node that just went away never answers; the change is stored and applies on its next connect.
                    GroupLog.AckTimedOut(_logger, change.ChangeId, waiter.Remaining, AckTimeout);
                }
            }
        }
        finally
        {
            _node.ForgetAcks(change.ChangeId);
        }

        return changed;
    }

    private static async Task<T> Run<T>(Func<Task<T>> command, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        try
        {
            return await command().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisFailures.IsUnavailable(ex))
        {
            throw RedisFailures.Unavailable("a group operation", ex);
        }
    }

    private static void Check(string id, string paramName)
    {
        if (!EnvelopeCodec.CanEncodeUserId(id))
        {
            throw new ArgumentException($"'{paramName}' must be non-empty, well-formed and at most {EnvelopeCodec.MaxUserIdBytes} UTF-8 bytes.", paramName);
        }
    }
}
