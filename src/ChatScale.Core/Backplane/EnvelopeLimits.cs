namespace ChatScale;

/// <summary>Hard limits of the envelope wire format, enforced by both the encoder and the decoder.</summary>
internal static class EnvelopeLimits
{
    /// <summary>Longest node id, in UTF-8 bytes.</summary>
    public const int MaxNodeIdBytes = 512;

    /// <summary>Longest user id, in UTF-8 bytes.</summary>
    public const int MaxUserIdBytes = 1024;

    /// <summary>Most recipients in one envelope.</summary>
    public const int MaxRecipients = 1_000_000;

    /// <summary>Largest payload the format carries (the configured limit is usually far lower).</summary>
    public const int MaxPayloadBytes = 64 * 1024 * 1024;
}
