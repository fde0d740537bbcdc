using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Playwright;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>What a person does on the sample page, step by step.</summary>
internal static class PageActions
{
    public static async Task<IPage> SignInAsync(BrowserSession browser, ChatNode node, string user)
    {
        var page = await browser.OpenAsync(node.BaseAddress);
        await page.FillAsync("#user", user);
        await page.ClickAsync("#signin");
        await page.Locator("#status[data-state='online']").WaitForAsync();
        return page;
    }

    /// <summary>Starts a conversation with <paramref name="others"/> (comma-separated) and returns its id once it is open.</summary>
    public static async Task<string> StartConversationAsync(IPage page, string others)
    {
        await page.FillAsync("#participants", others);
        await page.ClickAsync("#create");
        return (await page.Locator("#conversation[data-id]").GetAttributeAsync("data-id"))!;
    }

    public static async Task SendAsync(IPage page, string text)
    {
        await page.FillAsync("#text", text);
        await page.ClickAsync("#send");
        await page.Locator("#messages li", new() { HasText = text }).WaitForAsync();
    }

    public static Task<string[]> ShownTextsAsync(IPage page)
        => page.Locator("#messages li .text").EvaluateAllAsync<string[]>("items => items.map(i => i.textContent)");
}
