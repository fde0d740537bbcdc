using MongoDB.Driver;

namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>
/// The MongoDB the tests use: the real server named by <c>CHATSCALE_TEST_MONGO</c> (a connection string, e.g.
/// <c>mongodb://127.0.0.1:27017</c>) when set, else CongoDB started on a free loopback port. Each test takes its
/// own database (<see cref="NewDatabaseUrl"/>), so tests never see each other's data.
/// </summary>
public sealed class MongoFixture : IAsyncLifetime
{
    public const string EnvironmentVariable = "CHATSCALE_TEST_MONGO";

    private CongoDbServer? _congo;
    private MongoUrl _url = null!;

    /// <summary>True when the tests run against CongoDB rather than a real MongoDB.</summary>
    public bool IsCongoDb => _congo is not null;

    public MongoClient Client { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var external = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(external))
        {
            _congo = await CongoDbServer.StartAsync();
            external = _congo.ConnectionString;
        }

        _url = MongoUrl.Create(external);
        Client = new MongoClient(_url);
    }

    /// <summary>A connection string naming a database no other test uses.</summary>
    public string NewDatabaseUrl() => new MongoUrlBuilder(_url.ToString()) { DatabaseName = NewDatabaseName() }.ToString();

    /// <summary>A database no other test uses.</summary>
    public IMongoDatabase NewDatabase() => Client.GetDatabase(NewDatabaseName());

    public async Task DisposeAsync()
    {
        Client?.Dispose();
        if (_congo is not null)
        {
            await _congo.DisposeAsync();
        }
    }

    private static string NewDatabaseName() => $"chatscale_test_{Guid.NewGuid():N}";
}
