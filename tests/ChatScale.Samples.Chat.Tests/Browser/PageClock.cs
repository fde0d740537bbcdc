using Microsoft.Playwright;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>
/// Timestamps taken inside the page (Date.now(), the same clock as the test's), so a measured time does not include
/// Playwright's polling: when the status last turned online, and when a message text first appeared.
/// </summary>
internal static class PageClock
{
    public static Task InstallAsync(IPage page) => page.EvaluateAsync("""
        () => {
          window.__onlineAt = [];
          window.__shownAt = [];
          const status = document.getElementById('status');
          new MutationObserver(() => { if (status.dataset.state === 'online') window.__onlineAt.push(Date.now()); })
            .observe(status, { attributes: true, attributeFilter: ['data-state'] });
          new MutationObserver((records) => {
            for (const record of records) for (const node of record.addedNodes) window.__shownAt.push([Date.now(), node.textContent]);
          }).observe(document.getElementById('messages'), { childList: true });
        }
        """);

    public static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>When the page's status first turned online at or after <paramref name="since"/>.</summary>
    public static Task<long> OnlineAfterAsync(IPage page, long since)
        => page.EvaluateAsync<long>("since => window.__onlineAt.find((t) => t >= since) ?? -1", since);

    /// <summary>When a message containing <paramref name="text"/> was first shown.</summary>
    public static Task<long> ShownAsync(IPage page, string text)
        => page.EvaluateAsync<long>("text => (window.__shownAt.find(([, shown]) => shown.includes(text)) ?? [-1])[0]", text);
}
