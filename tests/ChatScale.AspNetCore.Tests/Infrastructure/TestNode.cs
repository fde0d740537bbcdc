using ChatScale.Connections;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ChatScale.AspNetCore.Tests.Infrastructure;

/// <summary>A real Kestrel host on 127.0.0.1 with a free port, ChatScale mapped at <c>/ws</c> and test authentication.</summary>
internal sealed class TestNode : IAsyncDisposable
{
    private bool _stopped;

    private TestNode(WebApplication app, Uri baseAddress)
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

    /// <summary>Builds the host without starting it.</summary>
    public static WebApplication Build(
        Action<ChatScaleOptions>? chatScale = null,
        Action<WebApplicationBuilder>? configure = null,
        Action<IEndpointConventionBuilder>? endpoint = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { EnvironmentName = Environments.Development });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Services.AddAuthentication(TestAuthHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, TestAuthHandler>(TestAuthHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddChatScale(chatScale);
        configure?.Invoke(builder);
        var app = builder.Build();
        var conventions = app.MapChatScale("/ws");
        endpoint?.Invoke(conventions);
        return app;
    }

    public static async Task<TestNode> StartAsync(
        Action<ChatScaleOptions>? chatScale = null,
        Action<WebApplicationBuilder>? configure = null,
        Action<IEndpointConventionBuilder>? endpoint = null)
    {
        var app = Build(chatScale, configure, endpoint);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new TestNode(app, new Uri(address));
    }

    public Task<ClientWebSocket> ConnectAsync(string? user, string? origin = null, string? role = null)
        => TestClient.ConnectAsync(WebSocketUri, user, origin, role);

    public Task<int> ConnectExpectingStatusAsync(string? user, string? origin = null, string? role = null)
        => TestClient.ConnectExpectingStatusAsync(WebSocketUri, user, origin, role);

    public async Task StopAsync()
    {
        _stopped = true;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await App.StopAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopped)
        {
            await StopAsync();
        }

        await App.DisposeAsync();
    }
}
