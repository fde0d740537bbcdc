using System.Text.Json;
using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace ChatScale.Samples.Chat.Tests.Browser;

/// <summary>
/// The reusable browser client (clients/js/chatscale-client.js, served by the sample as /lib/chatscale-client.js) in
/// headless Chromium against a real node: frames, a dropped connection and a node restart, a refused token.
/// </summary>
public sealed class ChatScaleClientTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Setup = """
        async ({ tokens, options }) => {
          const { ChatScaleClient } = await import('/lib/chatscale-client.js');
          const log = window.log = { states: [], messages: [], errors: [], opens: [], reconnected: [], tokenCalls: [] };
          const client = new ChatScaleClient({
            url: '/ws',
            accessToken: (context) => { log.tokenCalls.push(context); return tokens.length > 1 ? tokens.shift() : tokens[0]; },
            ...options,
          });
          client.on('state', (d) => log.states.push({ ...d, at: Date.now() }));
          client.on('message', (d) => log.messages.push(d.data));
          client.on('error', (d) => log.errors.push({ phase: d.phase, raw: d.raw ?? null }));
          client.on('open', (d) => log.opens.push({ reconnected: d.reconnected, at: Date.now() }));
          client.onReconnected(() => log.reconnected.push(Date.now()));
          window.client = client;
          client.start();
        }
        """;

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
    public async Task It_connects_with_the_token_from_its_factory_and_hands_over_each_frame_parsed_as_JSON()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        await using var alice = await _node.SignInAsync("alice");
        await using var bob = await _node.SignInAsync("bob");
        var page = await StartClientAsync(browser, [alice.Token]);
        await page.WaitForFunctionAsync("() => window.client.state === 'online'");

        var conversation = await bob.CreateConversationAsync("alice");
        await bob.SendAsync(conversation.Id, "hi Alice");
        await page.WaitForFunctionAsync("() => window.log.messages.length > 0");

        var message = await page.EvaluateAsync<JsonElement>("() => window.log.messages[0]");
        Assert.Equal("message", message.GetProperty("type").GetString());
        Assert.Equal("hi Alice", message.GetProperty("message").GetProperty("text").GetString());
        var states = await page.EvaluateAsync<string[]>("() => window.log.states.map((s) => s.state)");
        Assert.Equal(["connecting", "online"], states);
        Assert.False(await page.EvaluateAsync<bool>("() => window.log.opens[0].reconnected"));
        Assert.Equal(0, await page.EvaluateAsync<int>("() => window.log.reconnected.length"));
        Assert.Empty(browser.ConsoleErrors);
    }

    [Fact]
    public async Task A_frame_that_is_not_JSON_becomes_an_error_event_and_the_frames_after_it_still_arrive()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        await browser.Context.RouteWebSocketAsync(url => new Uri(url).AbsolutePath == ChatApp.WebSocketPath, ws =>
        {
            var server = ws.ConnectToServer();
            server.OnMessage(frame =>
            {
                if (frame.Text is { } text)
                {
                    ws.Send(text);
                }
                else
                {
                    ws.Send(frame.Binary!);
                }
            });
            ws.Send("this is not JSON");
        });
        await using var alice = await _node.SignInAsync("alice");
        await using var bob = await _node.SignInAsync("bob");
        var page = await StartClientAsync(browser, [alice.Token]);
        await page.WaitForFunctionAsync("() => window.log.errors.length > 0");

        var conversation = await bob.CreateConversationAsync("alice");
        await bob.SendAsync(conversation.Id, "after the bad frame");
        await page.WaitForFunctionAsync("() => window.log.messages.length > 0");

        Assert.Equal("parse", await page.EvaluateAsync<string>("() => window.log.errors[0].phase"));
        Assert.Equal("this is not JSON", await page.EvaluateAsync<string>("() => window.log.errors[0].raw"));
        Assert.Equal("after the bad frame", await page.EvaluateAsync<string>("() => window.log.messages[0].message.text"));
        Assert.Equal("online", await page.EvaluateAsync<string>("() => window.client.state"));
    }

    [Fact]
    public async Task Dropped_by_a_node_restart_it_backs_off_within_its_jittered_cap_then_reconnects_and_says_catch_up()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        await using var alice = await _node.SignInAsync("alice");
        var page = await StartClientAsync(browser, [alice.Token]);
        await page.WaitForFunctionAsync("() => window.client.state === 'online'");

        var port = _node.BaseAddress.Port;
        await _node.DisposeAsync();
        await page.WaitForFunctionAsync("() => window.log.states.filter((s) => s.delay !== undefined).length >= 7", null, new() { Timeout = 30_000 });
        _node = await StartNodeAsync(port);
        var started = PageClock.Now();
        var healthy = await PageClock.HealthyAsync(_node);
        await page.WaitForFunctionAsync("() => window.log.reconnected.length > 0");
        var reconnected = await page.EvaluateAsync<long>("() => window.log.reconnected[0]");
        output.WriteLine($"reconnected {reconnected - healthy} ms after the node was healthy ({reconnected - started} ms after it started listening)");
        Assert.InRange(reconnected, started, healthy + PageClock.LiveAgainBoundMs);

        // Each wait is 50-100 % of its step; steps double from 100 ms and stop at the 1 s cap.
        var delays = await page.EvaluateAsync<double[]>("() => window.log.states.filter((s) => s.delay !== undefined).map((s) => s.delay)");
        output.WriteLine("waits: " + string.Join(", ", delays.Select(d => $"{d:F0}")));
        for (var i = 0; i < delays.Length; i++)
        {
            var step = Math.Min(1000, 100 * Math.Pow(2, i));
            Assert.InRange(delays[i], step / 2, step);
        }

        Assert.True(delays.Distinct().Count() > 1, "the waits are jittered");
        Assert.Equal(delays.Length + 1, await page.EvaluateAsync<int>("() => window.log.tokenCalls.length"));
        var opens = await page.EvaluateAsync<bool[]>("() => window.log.opens.map((o) => o.reconnected)");
        Assert.Equal([false, true], opens);

        // The new socket carries frames.
        await using var bob = await _node.SignInAsync("bob");
        var conversation = await bob.CreateConversationAsync("alice");
        await bob.SendAsync(conversation.Id, "after the restart");
        await page.WaitForFunctionAsync("() => window.log.messages.some((m) => m.message?.text === 'after the restart')");
    }

    [Fact]
    public async Task A_refused_token_is_replaced_on_the_next_attempt_by_asking_the_factory_again()
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        await using var alice = await _node.SignInAsync("alice");
        var page = await StartClientAsync(browser, ["expired-or-forged-token", alice.Token]);

        await page.WaitForFunctionAsync("() => window.client.state === 'online'");

        var calls = await page.EvaluateAsync<JsonElement>("() => window.log.tokenCalls");
        Assert.Equal(2, calls.GetArrayLength());
        Assert.Equal(0, calls[0].GetProperty("failedHandshakes").GetInt32());
        Assert.Equal(1, calls[1].GetProperty("failedHandshakes").GetInt32());
        var states = await page.EvaluateAsync<string[]>("() => window.log.states.map((s) => s.state)");
        Assert.Equal(["connecting", "reconnecting", "reconnecting", "online"], states);
        Assert.Equal(1, await _node.App.Services.GetRequiredService<IConnectionRegistry>().GetConnectionCountAsync("alice"));
    }

    [Theory]
    [InlineData("window", "online")]
    [InlineData("document", "visibilitychange")]
    public async Task When_the_page_comes_back_online_or_visible_it_retries_at_once_instead_of_waiting_out_its_back_off(string target, string eventName)
    {
        await using var browser = await Chromium.LaunchAsync(_playwright);
        await using var alice = await _node.SignInAsync("alice");
        var page = await StartClientAsync(browser, [alice.Token], new { minDelay = 40_000, maxDelay = 60_000 });
        await page.WaitForFunctionAsync("() => window.client.state === 'online'");

        var port = _node.BaseAddress.Port;
        await _node.DisposeAsync();
        await page.WaitForFunctionAsync("() => window.client.retryAt !== null");
        _node = await StartNodeAsync(port);
        var healthy = PageClock.Now();
        var retryAt = await page.EvaluateAsync<long>("() => window.client.retryAt");
        Assert.True(retryAt - healthy > 15_000, $"the next scheduled attempt is only {retryAt - healthy} ms away");

        await page.EvaluateAsync($"() => {target}.dispatchEvent(new Event('{eventName}'))");
        await page.WaitForFunctionAsync("() => window.client.state === 'online'", null, new() { Timeout = 10_000 });
        var online = await page.EvaluateAsync<long>("() => window.log.opens.at(-1).at");
        output.WriteLine($"online {online - healthy} ms after the node was healthy; the back-off would have waited {retryAt - healthy} ms");
        Assert.True(online < retryAt, "it waited for the back-off");
    }

    private async Task<IPage> StartClientAsync(BrowserSession browser, string[] tokens, object? options = null)
    {
        // A page of the node's origin (the sample's, signed out, so it opens no socket of its own); the client is
        // imported from /lib like the sample page does.
        var page = await browser.OpenAsync(_node.BaseAddress);
        await page.EvaluateAsync(Setup, new { tokens, options = options ?? new { } });
        return page;
    }

    private static Task<ChatNode> StartNodeAsync(int port = 0)
        => ChatNode.StartAsync("client", redis: null, redisKeyPrefix: null, mongo: null, port);
}
