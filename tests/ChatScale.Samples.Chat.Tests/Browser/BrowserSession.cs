using Microsoft.Playwright;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>One Chromium with its own profile directory, which disposing deletes.</summary>
internal sealed class BrowserSession(IBrowserContext context, string profile) : IAsyncDisposable
{
    public IBrowserContext Context { get; } = context;

    public List<string> ConsoleErrors { get; } = [];

    public async Task<IPage> OpenAsync(Uri url)
    {
        var page = Context.Pages.Count > 0 ? Context.Pages[0] : await Context.NewPageAsync();
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                ConsoleErrors.Add($"{message.Text} ({message.Location})");
            }
        };
        page.PageError += (_, error) => ConsoleErrors.Add(error);
        await page.GotoAsync(url.ToString());
        return page;
    }

    public async ValueTask DisposeAsync()
    {
        await Context.CloseAsync();
        try
        {
            Directory.Delete(profile, recursive: true);
        }
        catch (IOException)
        {
            // Chromium may still hold a file for a moment; a leftover temp folder is harmless.
        }
    }
}
