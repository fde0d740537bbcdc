using Microsoft.AspNetCore.Http;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Decides whether a WebSocket request's <c>Origin</c> may connect (defence against cross-site WebSocket hijacking).
/// See <see cref="ChatScaleEndpointOptions.AllowedOrigins"/> for the rules.
/// </summary>
internal sealed class OriginPolicy
{
    private readonly HashSet<string> _allowed = new(StringComparer.OrdinalIgnoreCase);
    private readonly bool _allowAny;

    public OriginPolicy(IEnumerable<string> allowedOrigins)
    {
        foreach (var origin in allowedOrigins)
        {
            if (origin == "*")
            {
                _allowAny = true;
            }
            else if (TryNormalize(origin, out var normalized))
            {
                _allowed.Add(normalized);
            }
        }
    }

    /// <summary>Whether <paramref name="origin"/> is a valid allow-list entry: <c>*</c> or <c>http(s)://host[:port]</c>.</summary>
    public static bool IsValidEntry(string? origin)
        => origin == "*" || (TryParse(origin, out var uri) && uri.AbsolutePath == "/" && uri.Query.Length == 0 && uri.Fragment.Length == 0 && uri.UserInfo.Length == 0);

    public bool IsAllowed(HttpRequest request, out string? origin)
    {
        var header = request.Headers.Origin;
        origin = header.Count == 0 ? null : header.ToString();
        if (string.IsNullOrEmpty(origin))
        {
            // Browsers always send Origin on a WebSocket handshake; without one this is not a browser, so not CSWSH.
            return true;
        }

        if (header.Count != 1)
        {
            return false;
        }

        if (_allowAny)
        {
            return true;
        }

        if (_allowed.Count > 0)
        {
            return TryNormalize(origin, out var normalized) && _allowed.Contains(normalized);
        }

        // Same host: the Origin's host and port must be the ones the client addressed in Host. A Host without a port
        // matches an origin on its scheme's default port (TLS may end at a proxy, so the schemes are not compared).
        if (!TryParse(origin, out var uri) || !request.Host.HasValue)
        {
            return false;
        }

        var host = request.Host;
        return string.Equals(uri.Host, host.Host, StringComparison.OrdinalIgnoreCase)
            && (host.Port is { } port ? uri.Port == port : uri.IsDefaultPort);
    }

    private static bool TryNormalize(string origin, out string normalized)
    {
        if (TryParse(origin, out var uri))
        {
            normalized = uri.GetLeftPart(UriPartial.Authority);
            return true;
        }

        normalized = string.Empty;
        return false;
    }

    private static bool TryParse(string? origin, out Uri uri)
    {
        if (Uri.TryCreate(origin, UriKind.Absolute, out var parsed) && (parsed.Scheme == Uri.UriSchemeHttp || parsed.Scheme == Uri.UriSchemeHttps))
        {
            uri = parsed;
            return true;
        }

        uri = null!;
        return false;
    }
}
