namespace ChatScale.Groups;

/// <summary>One page of a group's members, returned by <see cref="IGroupManager.GetMembersAsync"/>.</summary>
public sealed class GroupMembersPage
{
    /// <summary>Creates a page.</summary>
    /// <param name="members">The members on this page.</param>
    /// <param name="nextCursor">The cursor of the next page, or <see langword="null"/> when this is the last.</param>
    public GroupMembersPage(IReadOnlyList<string> members, string? nextCursor)
    {
        ArgumentNullException.ThrowIfNull(members);
        Members = members;
        NextCursor = nextCursor;
    }

    /// <summary>The members on this page.</summary>
    public IReadOnlyList<string> Members { get; }

    /// <summary>An opaque cursor to pass to the next call, or <see langword="null"/> when the scan is complete.</summary>
    public string? NextCursor { get; }

    /// <summary>Whether this is the last page.</summary>
    public bool IsLast => NextCursor is null;
}
