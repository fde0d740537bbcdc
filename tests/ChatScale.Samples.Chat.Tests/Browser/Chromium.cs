using Microsoft.Playwright;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>
/// The machine's headless Chromium (Debian package <c>chromium</c>), driven by Playwright for .NET. Playwright's own
/// browser download is never used: <c>CHATSCALE_TEST_CHROMIUM</c> names another binary if needed.
/// </summary>
internal static class Chromium
{
    public const string EnvironmentVariable = "CHATSCALE_TEST_CHROMIUM";

    private static readonly string[] Flags =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ];

    public static string ExecutablePath()
    {
        var path = Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } configured ? configured : "/usr/bin/chromium";
        if (!File.Exists(path))
        {
            throw new MissingTestDependencyException(
                $"The browser tests need Chromium: tried {EnvironmentVariable} ({(Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } ? "set" : "unset")}) and {path} (not found). Install it (apt-get install -y chromium).");
        }

        return path;
    }

    /// <summary>A browser with its own fresh profile directory (deleted by <see cref="BrowserSession.DisposeAsync"/>).</summary>
    public static async Task<BrowserSession> LaunchAsync(IPlaywright playwright)
    {
        var profile = Directory.CreateTempSubdirectory("chatscale-chromium-").FullName;
        var context = await playwright.Chromium.LaunchPersistentContextAsync(profile, new BrowserTypeLaunchPersistentContextOptions
        {
            ExecutablePath = ExecutablePath(),
            Headless = true,
            Args = Flags,
            Timeout = 120_000,
        });
        context.SetDefaultTimeout(60_000);
        return new BrowserSession(context, profile);
    }
}
