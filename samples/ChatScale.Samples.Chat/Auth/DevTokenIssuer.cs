using System.Security.Claims;
using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ChatScale.Samples.Chat.Auth;

/// <summary>Issues tokens for a typed user name. Only the Development-only <c>POST /api/dev/token</c> uses it.</summary>
public sealed class DevTokenIssuer(IOptions<ChatAuthOptions> options, TimeProvider time)
{
    private readonly JsonWebTokenHandler _handler = new();

    /// <summary>A signed JWT whose <c>sub</c> is <paramref name="userId"/>.</summary>
    /// <param name="userId">The user.</param>
    /// <returns>The token.</returns>
    public string Issue(string userId)
    {
        var settings = options.Value;
        var now = time.GetUtcNow().UtcDateTime;
        return _handler.CreateToken(new SecurityTokenDescriptor
        {
            Subject = new ClaimsIdentity([new Claim(JwtRegisteredClaimNames.Sub, userId)]),
            Issuer = settings.Issuer,
            Audience = settings.Issuer,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + settings.TokenLifetime,
            SigningCredentials = new SigningCredentials(SigningKey(settings), SecurityAlgorithms.HmacSha256),
        });
    }

    /// <summary>The key that signs and validates tokens.</summary>
    /// <param name="settings">The settings.</param>
    /// <returns>The key.</returns>
    public static SymmetricSecurityKey SigningKey(ChatAuthOptions settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new SymmetricSecurityKey(Encoding.UTF8.GetBytes(settings.SigningKey ?? ChatAuthOptions.DevelopmentSigningKey));
    }
}
