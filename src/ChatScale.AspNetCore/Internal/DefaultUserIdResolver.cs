using System.Security.Claims;
using Microsoft.AspNetCore.Http;

namespace ChatScale.AspNetCore.Internal;

/// <summary>The default <see cref="IUserIdResolver"/>: NameIdentifier, then <c>sub</c>, of an authenticated user.</summary>
internal sealed class DefaultUserIdResolver : IUserIdResolver
{
    public string? GetUserId(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var user = context.User;
        if (user.Identity?.IsAuthenticated != true)
        {
            return null;
        }

        var id = user.FindFirst(ClaimTypes.NameIdentifier)?.Value;
        return string.IsNullOrEmpty(id) ? user.FindFirst("sub")?.Value : id;
    }
}
