using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Playwright;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>
/// The page's layout in headless Chromium at a desktop (1280 px) and a phone (390 px) width. Set
/// <c>CHATSCALE_TEST_SCREENSHOTS</c> to a folder to keep a screenshot of each.
/// </summary>
public sealed class PageLayoutTests : IAsyncLifetime
{
    private const string ScreenshotsVariable = "CHATSCALE_TEST_SCREENSHOTS";
    private ChatNode _node = null!;
    private IPlaywright _playwright = null!;

    public async Task InitializeAsync()
    {
        _node = await ChatNode.StartAsync("layout", redis: null, redisKeyPrefix: null, mongo: null);
        _playwright = await Playwright.CreateAsync();
    }

    public async Task DisposeAsync()
    {
        _playwright.Dispose();
        await _node.DisposeAsync();
    }

    [Theory]
    [InlineData(1280, 800)]
    [InlineData(390, 844)]
    public async Task A_4000_character_word_wraps_and_the_page_never_scrolls_sideways(int width, int height)
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await browser.OpenAsync(_node.BaseAddress);
        await page.SetViewportSizeAsync(width, height);
        await ScreenshotAsync(page, $"signin-{width}");
        await page.FillAsync("#user", "alice");
        await page.ClickAsync("#signin");
        await page.Locator("#status[data-state='online']").WaitForAsync();
        await page.FillAsync("#participants", "bob");
        await page.ClickAsync("#create");
        await page.Locator("#conversation[data-id]").WaitForAsync();
        await page.FillAsync("#text", "Hello Bob! The next message is one very long word.");
        await page.ClickAsync("#send");
        await page.Locator("#messages li").First.WaitForAsync();
        var word = new string('w', 4000);
        await page.FillAsync("#text", word);
        await page.ClickAsync("#send");
        await page.Locator("#messages li").Nth(1).WaitForAsync();
        await ScreenshotAsync(page, $"chat-{width}");

        var widths = await page.EvaluateAsync<int[]>(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth, document.querySelector('#messages').scrollWidth, document.querySelector('#messages').clientWidth]");
        Assert.True(widths[0] <= widths[1], $"the page is {widths[0]} px wide in a {widths[1]} px viewport");
        Assert.True(widths[2] <= widths[3], $"the message list is {widths[2]} px wide in {widths[3]} px");
        Assert.Equal(4000, (await page.Locator("#messages li .text").Nth(1).TextContentAsync())!.Length);
        Assert.Empty(browser.ConsoleErrors);
    }

    private static async Task ScreenshotAsync(IPage page, string name)
    {
        if (Environment.GetEnvironmentVariable(ScreenshotsVariable) is { Length: > 0 } folder)
        {
            Directory.CreateDirectory(folder);
            await page.ScreenshotAsync(new() { Path = Path.Combine(folder, name + ".png"), FullPage = false });
        }
    }
}
