using ChatScale.AspNetCore;
using ChatScale.Connections;
using ChatScale.Redis;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>
/// One ChatScale host: real Kestrel on 127.0.0.1 (free port), <c>MapChatScale("/ws")</c> behind header
/// authentication, on Redis when a connection string is given, else the in-memory defaults.
/// </summary>
internal sealed class ChatHost : IAsyncDisposable
{
    private bool _gone;

    private ChatHost(WebApplication app, Uri baseAddress)
    {
        App = app;
        BaseAddress = baseAddress;
        WebSocketUri = new Uri($"ws://{baseAddress.Authority}/ws");
    }

    public WebApplication App { get; }

    public IServiceProvider Services => App.Services;

    public Uri BaseAddress { get; }

    public Uri WebSocketUri { get; }

    public string Origin => $"http://{BaseAddress.Authority}";

    public LocalConnections Connections => Services.GetRequiredService<LocalConnections>();

    public IConnectionRegistry Registry => Services.GetRequiredService<IConnectionRegistry>();

    public IMessageBroadcaster Broadcaster => Services.GetRequiredService<IMessageBroadcaster>();

    public string NodeId => Connections.NodeId;

    public static WebApplication Build(
        string? redis = null,
        string? keyPrefix = null,
        Action<ChatScaleOptions>? chatScale = null,
        Action<ChatScaleEndpointOptions>? endpoint = null,
        Action<ChatScaleRedisOptions>? redisOptions = null,
        Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = Environments.Production });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddAuthentication(HeaderAuthHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, HeaderAuthHandler>(HeaderAuthHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        var chat = builder.Services.AddChatScale(chatScale);
        if (endpoint is not null)
        {
            builder.Services.Configure(endpoint);
        }

        if (redis is not null)
        {
            chat.AddRedis(o =>
            {
                o.ConnectionString = redis;
                o.KeyPrefix = keyPrefix ?? RedisFixture.UniquePrefix("rel");
                redisOptions?.Invoke(o);
            });
        }

        configure?.Invoke(builder);
        var app = builder.Build();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapChatScale("/ws");
        return app;
    }

    public static async Task<ChatHost> StartAsync(
        string? redis = null,
        string? keyPrefix = null,
        Action<ChatScaleOptions>? chatScale = null,
        Action<ChatScaleEndpointOptions>? endpoint = null,
        Action<ChatScaleRedisOptions>? redisOptions = null,
        Action<WebApplicationBuilder>? configure = null)
    {
        var app = Build(redis, keyPrefix, chatScale, endpoint, redisOptions, configure);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ChatHost(app, new Uri(address));
    }

    public Task<ClientWebSocket> ConnectAsync(string user, string? origin = null) => Ws.ConnectAsync(WebSocketUri, user, origin);

    /// <summary>A crash: the host is disposed without <c>StopAsync</c>, so no graceful close and no presence cleanup.</summary>
    public async Task CrashAsync()
    {
        _gone = true;
        await App.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_gone)
        {
            return;
        }

        _gone = true;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await App.StopAsync(timeout.Token);
        }
        finally
        {
            await App.DisposeAsync();
        }
    }
}
