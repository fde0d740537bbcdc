using System.Globalization;
using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Api;

/// <summary>
/// Cursor paging of <c>GET /api/conversations</c>: newest first, <c>?limit=</c> (1 to 200, default 100) and
/// <c>?before={id}</c>; the body stays a JSON array, and a full page carries <c>Link: &lt;...?before={last id}&amp;limit=n&gt;; rel="next"</c>
/// (RFC 8288), so no conversation can be pushed out of reach by newer ones.
/// </summary>
public static class ConversationPaging
{
    /// <summary>Conversations per page when <c>limit</c> is not given.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>Validates the query: 400 problem details name the bad parameter.</summary>
    /// <param name="before">The cursor.</param>
    /// <param name="limit">The page size.</param>
    /// <returns>Errors by parameter; empty when valid.</returns>
    public static Dictionary<string, string[]> Validate(string? before, int? limit)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (before is not null && !StoreIds.IsValid(before))
        {
            errors["before"] = ["Must be a conversation id (24 hex digits), the last one of the previous page."];
        }

        if (limit is < 1 or > Validation.MaxPageSize)
        {
            errors["limit"] = [$"Must be between 1 and {Validation.MaxPageSize}."];
        }

        return errors;
    }

    /// <summary>One page for <paramref name="userId"/>; sets the <c>Link</c> header when more may follow.</summary>
    /// <param name="store">The store.</param>
    /// <param name="userId">The caller.</param>
    /// <param name="before">The cursor (validated).</param>
    /// <param name="limit">The page size (validated).</param>
    /// <param name="http">The request, for the header.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page.</returns>
    public static async Task<IReadOnlyList<Conversation>> ListAsync(
        IChatStore store, string userId, string? before, int? limit, HttpContext http, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(http);
        var size = limit ?? DefaultPageSize;
        var page = await store.ListConversationsForAsync(userId, before?.ToLowerInvariant(), size, cancellationToken);
        if (page.Count == size)
        {
            http.Response.Headers.Link = string.Create(CultureInfo.InvariantCulture, $"</api/conversations?before={page[^1].Id}&limit={size}>; rel=\"next\"");
        }

        return page;
    }
}
