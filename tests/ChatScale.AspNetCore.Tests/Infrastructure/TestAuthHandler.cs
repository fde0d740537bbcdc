using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>Test-only authentication: the user id comes from the <c>X-Test-User</c> header, roles from <c>X-Test-Role</c>.</summary>
internal sealed class TestAuthHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Test";
    public const string UserHeader = "X-Test-User";
    public const string RoleHeader = "X-Test-Role";

    /// <summary>When set, the ticket expires at this Unix time in milliseconds (as JWT bearer sets <c>ExpiresUtc</c> from <c>exp</c>).</summary>
    public const string ExpiresHeader = "X-Test-Expires";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var user = Request.Headers[UserHeader].ToString();
        if (string.IsNullOrEmpty(user))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        var claims = new List<Claim> { new(ClaimTypes.NameIdentifier, user), new("alt_id", "alt-" + user) };
        var role = Request.Headers[RoleHeader].ToString();
        if (!string.IsNullOrEmpty(role))
        {
            claims.Add(new Claim(ClaimTypes.Role, role));
        }

        var principal = new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName));
        var properties = new AuthenticationProperties();
        if (long.TryParse(Request.Headers[ExpiresHeader].ToString(), out var expiresMs))
        {
            properties.ExpiresUtc = DateTimeOffset.FromUnixTimeMilliseconds(expiresMs);
        }

        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(principal, properties, SchemeName)));
    }
}
