using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>
/// The real page (wwwroot) in headless Chromium: two people, each on a different node, chat through Redis.
/// </summary>
[Collection(ServersCollection.Name)]
public sealed class BrowserChatTests(RedisFixture redis, MongoFixture mongo, ITestOutputHelper output) : IAsyncLifetime
{
    private ChatNode _node1 = null!;
    private ChatNode _node2 = null!;
    private IPlaywright _playwright = null!;
    private string _prefix = null!;
    private string _database = null!;

    public async Task InitializeAsync()
    {
        _prefix = RedisFixture.UniquePrefix("browser");
        _database = mongo.NewDatabaseUrl();
        _node1 = await ChatNode.StartAsync("node-1", redis.ConnectionString, _prefix, _database);
        _node2 = await ChatNode.StartAsync("node-2", redis.ConnectionString, _prefix, _database);
        _playwright = await Playwright.CreateAsync();
    }

    public async Task DisposeAsync()
    {
        _playwright.Dispose();
        await _node1.DisposeAsync();
        await _node2.DisposeAsync();
    }

    [Fact]
    public async Task Two_pages_on_two_nodes_chat_and_each_sees_the_others_message_appear_live()
    {
        await using var aliceBrowser = await Chromium.LaunchAsync(_playwright);
        await using var bobBrowser = await Chromium.LaunchAsync(_playwright);
        var alice = await SignInAsync(aliceBrowser, _node1, "alice");
        var bob = await SignInAsync(bobBrowser, _node2, "bob");

        // Alice starts a conversation with Bob; it appears in Bob's list and he opens it.
        await alice.FillAsync("#participants", "bob");
        await alice.ClickAsync("#create");
        var conversationId = await alice.Locator("#conversation[data-id]").GetAttributeAsync("data-id");
        Assert.NotNull(conversationId);
        await bob.ClickAsync($"#conversations li[data-id='{conversationId}']");

        // Each page shows the other, on the other node, as online: presence goes through Redis.
        await bob.Locator("#members li[data-user='alice'].online").WaitForAsync();
        await alice.Locator("#members li[data-user='bob'].online").WaitForAsync();

        // History is loaded by now and pages never poll for messages, so these arrive over the WebSockets.
        await alice.FillAsync("#text", "Hello Bob, this is Alice on node 1");
        await alice.ClickAsync("#send");
        await bob.Locator("#messages li", new() { HasText = "Hello Bob, this is Alice on node 1" }).WaitForAsync();

        await bob.FillAsync("#text", "Hi Alice, Bob here on node 2");
        await bob.ClickAsync("#send");
        await alice.Locator("#messages li", new() { HasText = "Hi Alice, Bob here on node 2" }).WaitForAsync();

        // Both pages show both messages once each, in the same order.
        string[] expected = ["aliceHello Bob, this is Alice on node 1", "bobHi Alice, Bob here on node 2"];
        foreach (var page in new[] { alice, bob })
        {
            var shown = await page.Locator("#messages li").EvaluateAllAsync<string[]>(
                "items => items.map(li => li.querySelector('.sender').textContent + li.querySelector('.text').textContent)");
            Assert.Equal(expected, shown);
        }

        Assert.Empty(aliceBrowser.ConsoleErrors);
        Assert.Empty(bobBrowser.ConsoleErrors);
    }

    [Fact]
    public async Task A_page_whose_node_restarts_reconnects_and_shows_the_message_it_missed()
    {
        await using var aliceBrowser = await Chromium.LaunchAsync(_playwright);
        await using var bobBrowser = await Chromium.LaunchAsync(_playwright);
        var alice = await SignInAsync(aliceBrowser, _node1, "alice");
        var bob = await SignInAsync(bobBrowser, _node2, "bob");
        await alice.FillAsync("#participants", "bob");
        await alice.ClickAsync("#create");
        var conversationId = await alice.Locator("#conversation[data-id]").GetAttributeAsync("data-id");
        await bob.ClickAsync($"#conversations li[data-id='{conversationId}']");
        await alice.FillAsync("#text", "before the restart");
        await alice.ClickAsync("#send");
        await bob.Locator("#messages li", new() { HasText = "before the restart" }).WaitForAsync();

        // Node 2 goes away: Bob's page notices and backs off; meanwhile Alice writes, with no socket to deliver to.
        await PageClock.InstallAsync(bob);
        var port = _node2.BaseAddress.Port;
        await _node2.DisposeAsync();
        await bob.Locator("#status[data-state='reconnecting']").WaitForAsync();
        await alice.FillAsync("#text", "sent while you were away");
        await alice.ClickAsync("#send");
        await alice.Locator("#messages li", new() { HasText = "sent while you were away" }).WaitForAsync();

        // Node 2 comes back on the same address; the page reconnects and catches up with ?after=<last contiguous seq>.
        // Live again means online and caught up: the missed message is on screen (bound: PageClock.LiveAgainBoundMs).
        _node2 = await ChatNode.StartAsync("node-2", redis.ConnectionString, _prefix, _database, port);
        var started = PageClock.Now();
        var healthy = await PageClock.HealthyAsync(_node2);
        await bob.Locator("#messages li", new() { HasText = "sent while you were away" }).WaitForAsync();
        var online = await PageClock.OnlineAfterAsync(bob, started);
        var caughtUp = await PageClock.ShownAsync(bob, "sent while you were away");
        output.WriteLine($"online {online - healthy} ms and caught up {caughtUp - healthy} ms after node 2 was healthy ({online - started} / {caughtUp - started} ms after it started listening)");
        Assert.InRange(online, started, healthy + PageClock.LiveAgainBoundMs);
        Assert.InRange(caughtUp, started, healthy + PageClock.LiveAgainBoundMs);
        Assert.Equal(2, await bob.Locator("#messages li").CountAsync());
        Assert.True(await bob.Locator("#retry-now").IsHiddenAsync());
    }

    [Fact]
    public async Task A_page_that_misses_a_live_message_notices_the_skipped_seq_on_the_next_one_and_fetches_it()
    {
        await using var aliceBrowser = await Chromium.LaunchAsync(_playwright);
        await using var bobBrowser = await Chromium.LaunchAsync(_playwright);

        // Bob's socket loses one frame on the way, as happens when frames are published out of order by two nodes
        // or a delivery fails: his page gets seq 1, then 3.
        var dropped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await bobBrowser.Context.RouteWebSocketAsync(url => new Uri(url).AbsolutePath == ChatApp.WebSocketPath, ws =>
        {
            var server = ws.ConnectToServer();
            server.OnMessage(frame =>
            {
                if (frame.Text is not { } text)
                {
                    ws.Send(frame.Binary!);
                }
                else if (text.Contains("lost on the way", StringComparison.Ordinal))
                {
                    dropped.TrySetResult();
                }
                else
                {
                    ws.Send(text);
                }
            });
        });
        var alice = await SignInAsync(aliceBrowser, _node1, "alice");
        var bob = await SignInAsync(bobBrowser, _node2, "bob");
        await alice.FillAsync("#participants", "bob");
        await alice.ClickAsync("#create");
        var conversationId = await alice.Locator("#conversation[data-id]").GetAttributeAsync("data-id");
        await bob.ClickAsync($"#conversations li[data-id='{conversationId}']");
        await alice.FillAsync("#text", "one");
        await alice.ClickAsync("#send");
        await bob.Locator("#messages li", new() { HasText = "one" }).WaitForAsync();

        await alice.FillAsync("#text", "two, lost on the way");
        await alice.ClickAsync("#send");
        await dropped.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(1, await bob.Locator("#messages li").CountAsync());

        // Seq 3 arrives while Bob's last contiguous seq is 1: the page fetches ?after=1 and shows 2 in its place.
        await alice.FillAsync("#text", "three");
        await alice.ClickAsync("#send");
        await bob.Locator("#messages li", new() { HasText = "lost on the way" }).WaitForAsync();
        await bob.Locator("#messages li", new() { HasText = "three" }).WaitForAsync();
        var shown = await bob.Locator("#messages li").EvaluateAllAsync<string[]>("items => items.map(li => li.dataset.seq + ' ' + li.querySelector('.text').textContent)");
        Assert.Equal(["1 one", "2 two, lost on the way", "3 three"], shown);
        Assert.Empty(bobBrowser.ConsoleErrors);
    }

    private static async Task<IPage> SignInAsync(BrowserSession browser, ChatNode node, string user)
    {
        var page = await browser.OpenAsync(node.BaseAddress);
        await page.FillAsync("#user", user);
        await page.ClickAsync("#signin");
        await page.Locator("#status[data-state='online']").WaitForAsync();
        return page;
    }
}
