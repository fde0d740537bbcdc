using System.Text.RegularExpressions;
using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>
/// The sample page in headless Chromium against one real node on its in-memory defaults (what <c>dotnet run</c>
/// gives a newcomer): each test is one trap a user fell into, and the page's answer to it.
/// </summary>
public sealed partial class SamplePageTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly SwitchableOutage _outage = new();
    private ChatNode _node = null!;
    private IPlaywright _playwright = null!;

    public async Task InitializeAsync()
    {
        _node = await StartNodeAsync();
        _playwright = await Playwright.CreateAsync();
    }

    public async Task DisposeAsync()
    {
        _playwright.Dispose();
        await _node.DisposeAsync();
    }

    [Fact]
    public async Task Before_sign_in_only_the_sign_in_form_shows_and_sign_out_returns_to_it_for_good()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await browser.OpenAsync(_node.BaseAddress);
        Assert.True(await page.Locator("#chat-view").IsHiddenAsync());
        Assert.True(await page.Locator("#create").IsHiddenAsync());
        Assert.True(await page.Locator("#signout").IsHiddenAsync());

        await page.FillAsync("#user", "alice");
        await page.ClickAsync("#signin");
        await page.Locator("#status[data-state='online']").WaitForAsync();
        Assert.True(await page.Locator("#signin-view").IsHiddenAsync());
        Assert.True(await page.Locator("#create").IsVisibleAsync());

        await page.ClickAsync("#signout");
        await page.Locator("#signin-view").WaitForAsync();
        Assert.True(await page.Locator("#chat-view").IsHiddenAsync());
        Assert.Null(await page.EvaluateAsync<string?>("() => sessionStorage.getItem('chatscale.session')"));
        await page.ReloadAsync();
        Assert.True(await page.Locator("#chat-view").IsHiddenAsync());
        Assert.Empty(browser.ConsoleErrors);
    }

    [Fact]
    public async Task What_is_typed_while_a_send_is_in_flight_stays_in_the_box_and_30_rapid_sends_arrive_once_each_in_order()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await PageActions.SignInAsync(browser, _node, "alice");
        var conversation = await PageActions.StartConversationAsync(page, "bob");

        // A slow network: every send takes 300 ms to reach the server.
        await page.RouteAsync("**/messages", async route =>
        {
            if (route.Request.Method == "POST")
            {
                await Task.Delay(300);
            }

            await route.ContinueAsync();
        });
        await page.FillAsync("#text", "first");
        await page.PressAsync("#text", "Enter");
        await page.FillAsync("#text", "a draft typed meanwhile");
        await page.Locator("#messages li", new() { HasText = "first" }).WaitForAsync();
        Assert.Equal("a draft typed meanwhile", await page.InputValueAsync("#text"));

        await page.FillAsync("#text", string.Empty);
        var rapid = Enumerable.Range(1, 30).Select(i => $"rapid {i}").ToArray();
        foreach (var text in rapid)
        {
            await page.FillAsync("#text", text);
            await page.PressAsync("#text", "Enter");
        }

        await page.Locator("#messages li", new() { HasText = "rapid 30" }).WaitForAsync();
        await using var alice = await _node.SignInAsync("alice");
        var history = (await alice.HistoryAsync(conversation, "?limit=100")).Select(m => m.Text).ToArray();
        Assert.Equal(["first", .. rapid], history);
        Assert.Equal(history, await PageActions.ShownTextsAsync(page));
        Assert.Empty(browser.ConsoleErrors);
    }

    [Fact]
    public async Task A_triple_click_on_Send_stores_the_message_once()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await PageActions.SignInAsync(browser, _node, "alice");
        var conversation = await PageActions.StartConversationAsync(page, "bob");

        await page.FillAsync("#text", "clicked three times");
        await page.ClickAsync("#send", new() { ClickCount = 3 });
        await PageActions.SendAsync(page, "the next one");

        await using var alice = await _node.SignInAsync("alice");
        Assert.Equal(["clicked three times", "the next one"], (await alice.HistoryAsync(conversation)).Select(m => m.Text));
        Assert.Equal(["clicked three times", "the next one"], await PageActions.ShownTextsAsync(page));
    }

    [Fact]
    public async Task A_send_refused_while_delivery_is_down_says_so_plainly_and_Retry_stores_it_once_under_the_same_id()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await PageActions.SignInAsync(browser, _node, "alice");
        var conversation = await PageActions.StartConversationAsync(page, "bob");

        _outage.Down = true;
        await page.FillAsync("#text", "sent while Redis is down");
        await page.PressAsync("#text", "Enter");
        var failed = page.Locator("#outbox li.failed");
        await failed.WaitForAsync();
        var id = await failed.GetAttributeAsync("data-id");
        var shownError = await failed.Locator(".state").TextContentAsync();
        output.WriteLine($"after {_outage.Refused} refused attempts the page says: {shownError}");
        Assert.True(_outage.Refused >= 2, $"the page retried {_outage.Refused} times");
        Assert.Contains("Not sent yet", shownError, StringComparison.Ordinal);
        Assert.DoesNotContain("same id", shownError, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(string.Empty, await page.InputValueAsync("#text"));

        _outage.Down = false;
        await failed.Locator(".retry").ClickAsync();
        await page.Locator("#messages li", new() { HasText = "sent while Redis is down" }).WaitForAsync();
        Assert.Equal(0, await page.Locator("#outbox li").CountAsync());

        await using var alice = await _node.SignInAsync("alice");
        var history = await alice.HistoryAsync(conversation);
        Assert.Equal(id, Assert.Single(history).Id);
        Assert.Equal(["sent while Redis is down"], await PageActions.ShownTextsAsync(page));
    }

    [Fact]
    public async Task A_5000_character_paste_is_kept_whole_and_the_page_says_how_much_too_long_it_is()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await PageActions.SignInAsync(browser, _node, "alice");
        await PageActions.StartConversationAsync(page, "bob");

        await page.FillAsync("#text", new string('x', 5000));

        Assert.Equal(5000, (await page.InputValueAsync("#text")).Length);
        Assert.True(await page.IsDisabledAsync("#send"));
        Assert.Matches(TooLong(), await page.TextContentAsync("#counter"));

        await page.FillAsync("#text", new string('x', 4000));
        Assert.True(await page.IsEnabledAsync("#send"));
        Assert.DoesNotMatch(TooLong(), await page.TextContentAsync("#counter") ?? string.Empty);
    }

    [Fact]
    public async Task A_message_shows_its_date_as_well_as_its_time()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await PageActions.SignInAsync(browser, _node, "alice");
        await PageActions.StartConversationAsync(page, "bob");
        await PageActions.SendAsync(page, "when was this?");

        var time = page.Locator("#messages li time").First;
        Assert.StartsWith("Today, ", await time.TextContentAsync(), StringComparison.Ordinal);
        var title = await time.GetAttributeAsync("title");
        var year = await page.EvaluateAsync<int>("() => new Date().getFullYear()");
        Assert.Contains(year.ToString(System.Globalization.CultureInfo.InvariantCulture), title, StringComparison.Ordinal);
        Assert.True(DateTimeOffset.TryParse(await time.GetAttributeAsync("datetime"), System.Globalization.CultureInfo.InvariantCulture, out _));
    }

    [Fact]
    public async Task After_its_node_restarts_the_page_is_live_again_within_seconds_and_drops_the_conversation_the_in_memory_store_lost()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        var page = await PageActions.SignInAsync(browser, _node, "alice");
        await PageActions.StartConversationAsync(page, "bob");
        await PageActions.SendAsync(page, "before the restart");
        await page.Locator("#members li[data-user='alice'].online").WaitForAsync();
        await PageClock.InstallAsync(page);

        var port = _node.BaseAddress.Port;
        await _node.DisposeAsync();
        await page.Locator("#status[data-state='reconnecting']").WaitForAsync();
        Assert.Contains("reconnecting", await page.TextContentAsync("#status"), StringComparison.Ordinal);
        await page.Locator("#members li[data-user='alice'].offline").WaitForAsync();   // not online while disconnected
        await page.FillAsync("#participants", "carol");
        await page.ClickAsync("#create");
        await page.Locator("#create-error", new() { HasText = "cannot be reached" }).WaitForAsync();

        _node = await StartNodeAsync(port);
        var started = PageClock.Now();
        var healthy = await PageClock.HealthyAsync(_node);
        await page.Locator("#notice", new() { HasText = "no longer on the server" }).WaitForAsync();
        var online = await PageClock.OnlineAfterAsync(page, started);
        output.WriteLine($"online {online - healthy} ms after the node was healthy ({online - started} ms after it started listening)");
        Assert.InRange(online, started, healthy + PageClock.LiveAgainBoundMs);
        Assert.True(await page.Locator("#conversation").IsHiddenAsync());
        Assert.Equal(string.Empty, await page.TextContentAsync("#create-error"));   // the outage's error is gone with it
        Assert.True(await page.Locator("#retry-now").IsHiddenAsync());
    }

    private Task<ChatNode> StartNodeAsync(int port = 0)
        => ChatNode.StartAsync("page", redis: null, redisKeyPrefix: null, mongo: null, port, _outage.Install);

    [GeneratedRegex(@"1[,.\u202f\u00a0]?000 characters too long")]
    private static partial Regex TooLong();
}
