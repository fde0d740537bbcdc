namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>
/// Two sample nodes on loopback sharing one real redis-server (backplane, presence, groups) and one MongoDB database:
/// the production shape. The users a test signs in are disposed with it, before the nodes.
/// </summary>
public abstract class TwoChatNodes(RedisFixture redis, MongoFixture mongo, string keyPrefix) : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];

    protected ChatNode Node1 { get; private set; } = null!;

    protected ChatNode Node2 { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var prefix = RedisFixture.UniquePrefix(keyPrefix);
        var database = mongo.NewDatabaseUrl();
        Node1 = await ChatNode.StartAsync("node-1", redis.ConnectionString, prefix, database);
        Node2 = await ChatNode.StartAsync("node-2", redis.ConnectionString, prefix, database);
    }

    public async Task DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            await owned.DisposeAsync();
        }

        await Node1.DisposeAsync();
        await Node2.DisposeAsync();
    }

    /// <summary>Signs <paramref name="name"/> in on <paramref name="node"/>; the user is disposed with the test.</summary>
    protected async Task<ChatUser> SignInAsync(ChatNode node, string name)
    {
        var user = await node.SignInAsync(name);
        _owned.Add(user);
        return user;
    }
}
