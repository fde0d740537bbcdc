using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.AspNetCore.Tests;

/// <summary>One in-memory node (no Redis): the WebSocket endpoint's admission rules and delivery.</summary>
public sealed class EndpointTests
{
    private static ReadOnlyMemory<byte> Json(string json) => Encoding.UTF8.GetBytes(json);

    [Fact]
    public async Task Publish_to_a_user_reaches_the_connected_client()
    {
        await using var node = await TestNode.StartAsync();
        using var alice = await node.ConnectAsync("alice");

        var result = await node.Broadcaster.PublishAsync(["alice", "bob"], Json("""{"text":"hi"}"""));

        Assert.Equal("""{"text":"hi"}""", await alice.ReceiveTextAsync());
        Assert.Equal(["bob"], result.OfflineUsers);
    }

    [Fact]
    public async Task Publish_to_all_reaches_every_client()
    {
        await using var node = await TestNode.StartAsync();
        using var alice = await node.ConnectAsync("alice");
        using var bob = await node.ConnectAsync("bob");

        await node.Broadcaster.PublishToAllAsync(Json("""{"notice":1}"""));

        Assert.Equal("""{"notice":1}""", await alice.ReceiveTextAsync());
        Assert.Equal("""{"notice":1}""", await bob.ReceiveTextAsync());
    }

    [Fact]
    public async Task Connection_is_in_presence_and_reachable_as_soon_as_the_client_sees_it_open()
    {
        await using var node = await TestNode.StartAsync();
        for (var i = 0; i < 20; i++)
        {
            var user = $"user-{i}";
            using var client = await node.ConnectAsync(user);

            // No polling: the connect has returned, so presence and local delivery must already be in place.
            Assert.Equal(1, await node.Registry.GetConnectionCountAsync(user));
            var result = await node.Broadcaster.PublishAsync([user], Json($$"""{"n":{{i}}}"""));
            Assert.Empty(result.OfflineUsers);
            Assert.Equal($$"""{"n":{{i}}}""", await client.ReceiveTextAsync());
        }
    }

    [Fact]
    public async Task Every_one_of_many_concurrent_connections_gets_a_publish_made_right_after_connecting()
    {
        await using var node = await TestNode.StartAsync();
        var users = Enumerable.Range(0, 200).Select(i => $"user-{i}").ToArray();
        var clients = await Task.WhenAll(users.Select(u => node.ConnectAsync(u)));
        try
        {
            var result = await node.Broadcaster.PublishAsync(users, Json("""{"all":true}"""));

            Assert.Empty(result.OfflineUsers);
            var received = await Task.WhenAll(clients.Select(c => c.ReceiveTextAsync()));
            Assert.All(received, text => Assert.Equal("""{"all":true}""", text));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task Unauthenticated_request_gets_401_and_no_connection()
    {
        await using var node = await TestNode.StartAsync();

        Assert.Equal(StatusCodes.Status401Unauthorized, await node.ConnectExpectingStatusAsync(user: null));
        Assert.Equal(0, node.Connections.Count);
    }

    [Fact]
    public async Task Request_with_a_foreign_origin_gets_403_by_default()
    {
        await using var node = await TestNode.StartAsync();

        Assert.Equal(StatusCodes.Status403Forbidden, await node.ConnectExpectingStatusAsync("alice", origin: "https://evil.example"));
        Assert.Equal(0, node.Connections.Count);
        Assert.Equal(0, await node.Registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task Same_host_origin_and_no_origin_are_accepted_by_default()
    {
        await using var node = await TestNode.StartAsync();

        using var browser = await node.ConnectAsync("alice", origin: node.Origin);
        using var nonBrowser = await node.ConnectAsync("bob", origin: null);

        Assert.Equal(WebSocketState.Open, browser.State);
        Assert.Equal(WebSocketState.Open, nonBrowser.State);
    }

    [Fact]
    public async Task Allow_list_accepts_listed_origins_only()
    {
        await using var node = await TestNode.StartAsync(configure: b =>
            b.Services.Configure<ChatScaleEndpointOptions>(o => o.AllowedOrigins.Add("https://chat.example.com")));

        using var listed = await node.ConnectAsync("alice", origin: "https://CHAT.example.com");
        Assert.Equal(WebSocketState.Open, listed.State);
        Assert.Equal(StatusCodes.Status403Forbidden, await node.ConnectExpectingStatusAsync("bob", origin: node.Origin));
        Assert.Equal(StatusCodes.Status403Forbidden, await node.ConnectExpectingStatusAsync("bob", origin: "https://chat.example.com:8443"));
    }

    [Fact]
    public async Task Message_over_the_size_cap_closes_with_1009()
    {
        await using var node = await TestNode.StartAsync(o => o.MaxIncomingFrameBytes = 1024);
        using var client = await node.ConnectAsync("alice");

        await client.SendTextAsync($"\"{new string('x', 4096)}\"");

        Assert.Equal(WebSocketCloseStatus.MessageTooBig, await client.ReceiveCloseAsync());
        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "presence is removed");
    }

    [Fact]
    public async Task Message_at_the_size_cap_is_accepted()
    {
        var handler = new EchoHandler();
        await using var node = await TestNode.StartAsync(o => o.MaxIncomingFrameBytes = 1024, b => b.Services.AddSingleton<IClientMessageHandler>(handler));
        using var client = await node.ConnectAsync("alice");
        var atCap = $"\"{new string('x', 1022)}\"";

        await client.SendTextAsync(atCap);

        Assert.Equal($"{{\"echo\":{atCap}}}", await client.ReceiveTextAsync());
    }

    [Fact]
    public async Task Flood_over_the_rate_limit_closes_with_1008()
    {
        await using var node = await TestNode.StartAsync(configure: b =>
            b.Services.Configure<ChatScaleEndpointOptions>(o => (o.MessagesPerSecond, o.MessageBurst) = (5, 10)));
        using var client = await node.ConnectAsync("alice");

        // 100 messages at 5/s with a burst of 10 would need 18 s to stay under the limit.
        for (var i = 0; i < 100 && client.State == WebSocketState.Open; i++)
        {
            try
            {
                await client.SendTextAsync($$"""{"n":{{i}}}""");
            }
            catch (WebSocketException)
            {
                break;
            }
        }

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, await client.ReceiveCloseAsync());
    }

    [Fact]
    public async Task Messages_within_the_rate_limit_are_not_closed()
    {
        var handler = new EchoHandler();
        await using var node = await TestNode.StartAsync(configure: b =>
        {
            b.Services.Configure<ChatScaleEndpointOptions>(o => (o.MessagesPerSecond, o.MessageBurst) = (1, 10));
            b.Services.AddSingleton<IClientMessageHandler>(handler);
        });
        using var client = await node.ConnectAsync("alice");

        for (var i = 0; i < 10; i++)
        {
            await client.SendTextAsync($$"""{"n":{{i}}}""");
            Assert.Equal($$$"""{"echo":{"n":{{{i}}}}}""", await client.ReceiveTextAsync());
        }
    }

    [Fact]
    public async Task Binary_frame_closes_with_1003()
    {
        await using var node = await TestNode.StartAsync();
        using var client = await node.ConnectAsync("alice");

        await client.SendAsync(new byte[] { 1, 2, 3 }, WebSocketMessageType.Binary, true, CancellationToken.None);

        Assert.Equal(WebSocketCloseStatus.InvalidMessageType, await client.ReceiveCloseAsync());
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"a\":1} {\"b\":2}")]
    [InlineData("")]
    public async Task Text_that_is_not_json_closes_with_1007(string text)
    {
        await using var node = await TestNode.StartAsync();
        using var client = await node.ConnectAsync("alice");

        await client.SendTextAsync(text);

        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, await client.ReceiveCloseAsync());
    }

    [Fact]
    public async Task Text_that_is_not_utf8_closes_with_1007()
    {
        await using var node = await TestNode.StartAsync();
        using var client = await node.ConnectAsync("alice");

        // The client API sends these bytes as-is; the server must not hand invalid UTF-8 to the application.
        await client.SendAsync(new byte[] { (byte)'"', 0xC3, 0x28, (byte)'"' }, WebSocketMessageType.Text, true, CancellationToken.None);

        Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, await client.ReceiveCloseAsync());
    }

    [Fact]
    public async Task Client_message_handler_sees_connect_messages_and_disconnect()
    {
        var handler = new EchoHandler();
        await using var node = await TestNode.StartAsync(configure: b => b.Services.AddSingleton<IClientMessageHandler>(handler));
        using var client = await node.ConnectAsync("alice");

        await client.SendTextAsync("""{"typing":true}""");
        Assert.Equal("""{"echo":{"typing":true}}""", await client.ReceiveTextAsync());
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        await Poll.UntilAsync(() => handler.Events.Contains("disconnected alice"), "the handler sees the disconnect");
        Assert.Equal(["connected alice", """message alice {"typing":true}""", "disconnected alice"], handler.Events);
    }

    [Fact]
    public async Task Handler_failure_closes_with_1011_and_leaves_presence()
    {
        var handler = new EchoHandler();
        await using var node = await TestNode.StartAsync(configure: b => b.Services.AddSingleton<IClientMessageHandler>(handler));
        using var client = await node.ConnectAsync("alice");

        await client.SendTextAsync("""{"do":"boom"}""");

        Assert.Equal(WebSocketCloseStatus.InternalServerError, await client.ReceiveCloseAsync());
        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "presence is removed");
    }

    [Fact]
    public async Task Custom_user_id_resolver_decides_the_user()
    {
        await using var node = await TestNode.StartAsync(configure: b =>
            b.Services.AddSingleton<IUserIdResolver>(new ClaimResolver("alt_id")));
        using var client = await node.ConnectAsync("alice");

        Assert.Equal(1, await node.Registry.GetConnectionCountAsync("alt-alice"));
        Assert.Equal(0, await node.Registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task RequireAuthorization_composes_with_the_endpoint()
    {
        await using var node = await TestNode.StartAsync(
            configure: b => b.Services.AddAuthorizationBuilder().AddPolicy("chatters", p => p.RequireRole("chatter")),
            endpoint: e => e.RequireAuthorization("chatters"));

        Assert.Equal(StatusCodes.Status403Forbidden, await node.ConnectExpectingStatusAsync("alice", role: "lurker"));
        using var chatter = await node.ConnectAsync("bob", role: "chatter");
        Assert.Equal(WebSocketState.Open, chatter.State);
    }

    [Fact]
    public async Task Plain_http_request_gets_400()
    {
        await using var node = await TestNode.StartAsync();
        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        http.DefaultRequestHeaders.Add(TestAuthHandler.UserHeader, "alice");

        using var response = await http.GetAsync("/ws");

        Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
    }

    private sealed class ClaimResolver(string claimType) : IUserIdResolver
    {
        public string? GetUserId(HttpContext context) => context.User.FindFirst(claimType)?.Value;
    }
}
