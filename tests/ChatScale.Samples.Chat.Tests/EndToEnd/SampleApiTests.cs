using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using ChatScale.Samples.Chat.Tests.Infrastructure;

namespace ChatScale.Samples.Chat.Tests.EndToEnd;

/// <summary>The sample API's answers to a client's mistakes and to a Redis outage: problem details a client can act on.</summary>
public sealed class SampleApiTests
{
    [Theory]
    [InlineData("this is not JSON", "application/json")]
    [InlineData("{\"participants\": [\"bob\"", "application/json")]
    [InlineData("{\"participants\": \"bob\"}", "application/json")]
    public async Task Creating_a_conversation_with_a_body_that_is_not_valid_JSON_answers_400_problem_details(string body, string contentType)
    {
        await using var node = await ChatNode.StartAsync("api", redis: null, redisKeyPrefix: null, mongo: null);
        await using var alice = await node.SignInAsync("alice");

        using var response = await alice.Http.PostAsync("/api/conversations", new StringContent(body, Encoding.UTF8, contentType));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(400, problem.RootElement.GetProperty("status").GetInt32());
    }

    [Theory]
    [InlineData("alice")]
    [InlineData("alice", "alice")]
    public async Task A_conversation_with_only_yourself_is_refused_with_a_validation_problem(params string[] participants)
    {
        await using var node = await ChatNode.StartAsync("api", redis: null, redisKeyPrefix: null, mongo: null);
        await using var alice = await node.SignInAsync("alice");

        using var response = await alice.Http.PostAsJsonAsync("/api/conversations", new { participants });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("at least one other participant", problem.RootElement.GetProperty("errors").GetProperty("participants")[0].GetString(), StringComparison.Ordinal);
        Assert.Empty(await alice.Http.GetFromJsonAsync<JsonElement[]>("/api/conversations") ?? []);
    }

    [Fact]
    public async Task Presence_answers_503_with_Retry_After_while_Redis_is_down_and_200_once_it_is_back()
    {
        await using var redis = await RedisServer.StartNewAsync();
        await using var node = await ChatNode.StartAsync("api", redis.ConnectionString, RedisFixture.UniquePrefix("presence"), mongo: null);
        await using var alice = await node.SignInAsync("alice");
        var conversation = await alice.CreateConversationAsync("bob");
        Assert.Equal(HttpStatusCode.OK, (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/presence")).StatusCode);

        await redis.StopAsync();
        using var down = await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/presence");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), down.Headers.RetryAfter?.Delta);
        Assert.Equal("application/problem+json", down.Content.Headers.ContentType?.MediaType);

        await redis.StartAsync();
        await Eventually.TrueAsync(async () => (await alice.Http.GetAsync($"/api/conversations/{conversation.Id}/presence")).StatusCode == HttpStatusCode.OK, "presence answers 200 again", TimeSpan.FromSeconds(30));
    }
}
