using ChatScale.Reliability.Tests.Infrastructure;
using ChatScale.Samples.Chat.Store;

namespace ChatScale.Reliability.Tests.Security;

/// <summary>No endpoint takes a user id from the query string: only the authenticated principal counts.</summary>
[Collection(SharedRedis.Name)]
public sealed class QueryStringUserTests(RedisFixture redis)
{
    public static TheoryData<string> Queries => new()
    {
        "?user=alice",
        "?userId=alice",
        "?userid=alice&user_id=alice",
        "?sub=alice",
        "?access_token=alice",
        "?X-User=YWxpY2U",
        "?user=alice&access_token=alice&userId=alice",
    };

    [Theory]
    [MemberData(nameof(Queries))]
    public async Task The_ChatScale_endpoint_of_a_host_without_a_query_token_scheme_answers_401_to_a_user_in_the_query(string query)
    {
        await using var node = await ChatHost.StartAsync();
        var status = await Ws.ConnectExpectingStatusAsync(new Uri(node.WebSocketUri + query), user: null);
        Assert.Equal(401, status);
        Assert.Equal(0, node.Connections.Count);
    }

    [Theory]
    [MemberData(nameof(Queries))]
    public async Task The_sample_app_whose_query_token_must_be_a_signed_JWT_answers_401_to_a_user_in_the_query(string query)
    {
        await using var node = await SampleNode.StartAsync("qs-" + Guid.NewGuid().ToString("N")[..6], redis.ConnectionString, RedisFixture.UniquePrefix("qs"), new InMemoryChatStore());
        var uri = new Uri($"ws://{node.BaseAddress.Authority}{ChatScale.Samples.Chat.ChatApp.WebSocketPath}{query}");
        Assert.Equal(401, await Ws.ConnectExpectingStatusAsync(uri, user: null));
    }
}
