using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using ChatScale.Samples.Chat.Auth;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

/// <summary>
/// What one user may ask of the sample's API: paged conversation lists, limited conversation creation, blocked users
/// cannot add you, and malformed input answers 400 problem details in Development and Production alike.
/// One node on the embedded defaults; the send-rate flood and oversized bodies are in ChatScale.Reliability.Tests.
/// </summary>
public sealed class AbuseLimitsTests
{
    private static Task<ChatNode> StartAsync(params (string Key, string Value)[] settings)
        => ChatNode.StartAsync("limits", redis: null, redisKeyPrefix: null, mongo: null, configure: b =>
            b.Configuration.AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))));

    [Fact]
    public async Task Conversation_list_is_paged_newest_first_with_a_next_link_so_spam_cannot_hide_an_older_conversation()
    {
        await using var node = await StartAsync();
        await using var victim = await node.SignInAsync("victim");
        await using var spammer = await node.SignInAsync("spammer");
        var real = await victim.CreateConversationAsync("friend");
        for (var i = 0; i < 4; i++)
        {
            await spammer.CreateConversationAsync("victim");
        }

        // Five conversations in pages of two: 2, 2, then 1 without a next link.
        var seen = new List<string>();
        var next = "/api/conversations?limit=2";
        var pages = 0;
        while (next is not null)
        {
            var response = await victim.Http.GetAsync(next);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var page = (await response.Content.ReadFromJsonAsync<List<Conversation>>(ChatEvents.Json))!;
            seen.AddRange(page.Select(c => c.Id));
            next = response.Headers.TryGetValues("Link", out var links) ? links.Single().Split('<', '>')[1] : null;
            pages++;
        }

        Assert.Equal(3, pages);
        Assert.Equal(5, seen.Distinct().Count());
        Assert.Equal(real.Id, seen[^1]);
        Assert.Equal(seen.OrderByDescending(id => id, StringComparer.Ordinal), seen);
    }

    [Fact]
    public async Task Creating_conversations_past_the_per_user_burst_gets_429_with_retry_after()
    {
        await using var node = await StartAsync(("Limits:ConversationBurst", "3"), ("Limits:ConversationsPerMinute", "1"));
        await using var spammer = await node.SignInAsync("spammer");
        await using var other = await node.SignInAsync("other");
        for (var i = 0; i < 3; i++)
        {
            await spammer.CreateConversationAsync("victim");
        }

        var refused = await spammer.Http.PostAsJsonAsync("/api/conversations", new { participants = new[] { "victim" } });

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        Assert.True(refused.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), $"Retry-After {refused.Headers.RetryAfter}");

        // The limit is per user.
        await other.CreateConversationAsync("victim");
    }

    [Fact]
    public async Task A_user_who_blocked_you_cannot_be_added_to_a_conversation_until_unblocked()
    {
        await using var node = await StartAsync();
        await using var bob = await node.SignInAsync("bob");
        await using var mallory = await node.SignInAsync("mallory");

        Assert.Equal(HttpStatusCode.NoContent, (await bob.Http.PutAsync("/api/blocks/mallory", null)).StatusCode);
        Assert.Equal(["mallory"], await bob.Http.GetFromJsonAsync<string[]>("/api/blocks") ?? []);

        var refused = await mallory.Http.PostAsJsonAsync("/api/conversations", new { participants = new[] { "carol", "bob" } });
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Empty(await bob.Http.GetFromJsonAsync<List<Conversation>>("/api/conversations", ChatEvents.Json) ?? []);

        // Others are unaffected, and so is mallory with anyone else.
        await mallory.CreateConversationAsync("carol");
        Assert.Equal(HttpStatusCode.NoContent, (await bob.Http.DeleteAsync("/api/blocks/mallory")).StatusCode);
        await mallory.CreateConversationAsync("bob");
        Assert.Equal(HttpStatusCode.BadRequest, (await bob.Http.PutAsync("/api/blocks/bob", null)).StatusCode);
    }

    [Theory]
    [InlineData("Development")]
    [InlineData("Production")]
    public async Task Malformed_input_answers_400_problem_details_without_a_stack_trace(string environment)
    {
        string[] args =
        [
            $"--environment={environment}",
            "--urls=http://127.0.0.1:0",
            "--Auth:SigningKey=" + new string('k', 64),
            "--Logging:LogLevel:Default=None",
        ];
        await using var app = ChatApp.Build(args);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var http = new HttpClient { BaseAddress = new Uri(address) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", app.Services.GetRequiredService<DevTokenIssuer>().Issue("alice"));
        var created = await http.PostAsJsonAsync("/api/conversations", new { participants = new[] { "bob" } });
        var conversation = (await created.Content.ReadFromJsonAsync<Conversation>(ChatEvents.Json))!.Id;

        var requests = new Func<Task<HttpResponseMessage>>[]
        {
            () => http.PostAsync($"/api/conversations/{conversation}/messages", new StringContent("{\"text\": \"unterminated", Encoding.UTF8, "application/json")),
            () => http.PostAsync("/api/conversations", new StringContent("[1,2", Encoding.UTF8, "application/json")),
            () => http.PostAsync($"/api/conversations/{conversation}/messages", new StringContent("{\"text\": 42}", Encoding.UTF8, "application/json")),
            () => http.GetAsync($"/api/conversations/{conversation}/messages?limit=abc"),
            () => http.GetAsync("/api/conversations?limit=abc"),
            () => http.GetAsync("/api/conversations?before=not-an-id"),
        };
        foreach (var request in requests)
        {
            var response = await request();
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{response.RequestMessage!.RequestUri}: {(int)response.StatusCode} {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        }

        await app.StopAsync();
    }
}
