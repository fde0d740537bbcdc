using ChatScale.Samples.Chat.Tests.Infrastructure;
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

    /// <summary>
    /// How long a page may take to be live again after its node is healthy. The client waits at most 1 s (its capped,
    /// jittered back-off), then the handshake and the catch-up fetch run on a cold node: about 0.4-0.8 s on a quiet
    /// machine, 2.2 s measured at a load average of 60 on 2 cores. The page before the client waited up to ~30 s.
    /// </summary>
    public const long LiveAgainBoundMs = 3000;

    public static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>When <paramref name="node"/> first answers <c>GET /health</c> with 200 (what a load balancer waits for).</summary>
    public static async Task<long> HealthyAsync(ChatNode node)
    {
        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        for (var deadline = DateTime.UtcNow.AddSeconds(30); ; await Task.Delay(20))
        {
            using var response = await http.GetAsync(new Uri("/health", UriKind.Relative));
            if (response.IsSuccessStatusCode || DateTime.UtcNow > deadline)
            {
                Assert.True(response.IsSuccessStatusCode, $"/health answered {(int)response.StatusCode}");
                return Now();
            }
        }
    }

    /// <summary>When the page's status first turned online at or after <paramref name="since"/>.</summary>
    public static Task<long> OnlineAfterAsync(IPage page, long since)
        => page.EvaluateAsync<long>("since => window.__onlineAt.find((t) => t >= since) ?? -1", since);

    /// <summary>When a message containing <paramref name="text"/> was first shown.</summary>
    public static Task<long> ShownAsync(IPage page, string text)
        => page.EvaluateAsync<long>("text => (window.__shownAt.find(([, shown]) => shown.includes(text)) ?? [-1])[0]", text);
}
