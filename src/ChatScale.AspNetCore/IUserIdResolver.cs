using Microsoft.AspNetCore.Http;

namespace ChatScale.AspNetCore;

/// <summary>
/// Decides which user a WebSocket request belongs to. Replace it to take the id from another claim:
/// <c>services.AddSingleton&lt;IUserIdResolver, MyResolver&gt;()</c> (before or after <c>AddChatScale</c>).
/// </summary>
/// <remarks>
/// The default resolver reads the <see cref="System.Security.Claims.ClaimTypes.NameIdentifier"/> claim, then the
/// <c>sub</c> claim, of an authenticated <see cref="HttpContext.User"/>. Never take the id from the query string or a
/// header the client controls: the id must come from authentication.
/// </remarks>
public interface IUserIdResolver
{
    /// <summary>Returns the user id of <paramref name="context"/>, or <see langword="null"/> to reject it with 401.</summary>
    /// <param name="context">The WebSocket upgrade request, after authentication ran.</param>
    /// <returns>The user id, or <see langword="null"/> when the request is not authenticated.</returns>
    string? GetUserId(HttpContext context);
}
