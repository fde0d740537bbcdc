using System.Net;
using ChatScale.Samples.Chat.Store;
using ChatScale.Samples.Chat.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

/// <summary>With no ConnectionStrings, the app runs on embedded defaults: what <c>dotnet run</c> gives a newcomer.</summary>
public sealed class SingleNodeDefaultsTests : IAsyncLifetime
{
    private ChatNode _node = null!;

    public async Task InitializeAsync() => _node = await ChatNode.StartAsync("solo", redis: null, redisKeyPrefix: null, mongo: null);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task Without_Redis_or_Mongo_configured_the_app_uses_the_in_memory_store_and_still_delivers_live()
    {
        await using var alice = await _node.SignInAsync("alice");
        await using var bob = await _node.SignInAsync("bob");
        await bob.ConnectAsync();
        var conversation = await alice.CreateConversationAsync("bob");

        var saved = await alice.SendAsync(conversation.Id, "hello from one node");

        Assert.IsType<InMemoryChatStore>(_node.App.Services.GetRequiredService<IChatStore>());
        Assert.IsType<ChatScale.InMemory.InMemoryMessageBroadcaster>(_node.App.Services.GetRequiredService<IMessageBroadcaster>());
        Assert.Equal(saved, await bob.ReceiveMessageAsync());
    }

    [Fact]
    public async Task The_page_and_the_health_endpoint_are_served()
    {
        using var http = new HttpClient { BaseAddress = _node.BaseAddress };

        var page = await http.GetStringAsync("/");
        Assert.Contains("app.js", page, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/app.js")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
    }
}
