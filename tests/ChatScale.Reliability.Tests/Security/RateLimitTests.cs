using ChatScale.AspNetCore;
using ChatScale.Reliability.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>The per-connection message rate limit closes the flooding connection with 1008, and only it.</summary>
public sealed class RateLimitTests
{
    [Fact]
    public async Task A_connection_over_its_rate_is_closed_with_1008_while_the_same_users_other_connection_keeps_working()
    {
        await using var node = await ChatHost.StartAsync(
            endpoint: o =>
            {
                o.MessagesPerSecond = 2;
                o.MessageBurst = 5;
            },
            configure: b => b.Services.AddSingleton<IClientMessageHandler, EchoHandler>());
        using var flooder = await node.ConnectAsync("alice");
        using var calm = await node.ConnectAsync("alice");

        for (var i = 0; i < 5; i++)
        {
            await flooder.SendTextAsync($"{{\"n\":{i}}}");
            Assert.Equal($"{{\"n\":{i}}}", await flooder.ReceiveTextAsync());
        }

        // The burst is spent: the next messages, sent at once, exceed 2 per second.
        for (var i = 5; i < 10 && flooder.State == WebSocketState.Open; i++)
        {
            try
            {
                await flooder.SendTextAsync($"{{\"n\":{i}}}");
            }
            catch (WebSocketException)
            {
                break;
            }
        }

        Assert.Equal(WebSocketCloseStatus.PolicyViolation, await flooder.ReceiveCloseAsync());

        // The limit is per connection: the same user's other connection still has its own budget.
        await calm.SendTextAsync("{\"calm\":true}");
        Assert.Equal("{\"calm\":true}", await calm.ReceiveTextAsync());
        await calm.CloseQuietlyAsync();
    }
}
