namespace ChatScale.Samples.Chat.Auth;

/// <summary>JWT settings, bound from the <c>Auth</c> configuration section. Every node of a deployment must share them.</summary>
public sealed class ChatAuthOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Auth";

    /// <summary>
    /// The development default signing key. Outside Development the app refuses to start without <c>Auth:SigningKey</c>,
    /// so this key can never sign production tokens.
    /// </summary>
    public const string DevelopmentSigningKey = "chatscale-sample-development-signing-key-not-for-production";

    /// <summary>The HMAC-SHA256 key (at least 32 bytes of UTF-8).</summary>
    public string? SigningKey { get; set; }

    /// <summary>The token issuer and audience.</summary>
    public string Issuer { get; set; } = "chatscale-sample";

    /// <summary>How long a dev token is valid. Default 12 h.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromHours(12);
}
