using System.Net.Http.Headers;
using System.Net.Http.Json;
using ChatScale.Samples.Chat;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>
/// One node of the sample chat app (<see cref="ChatApp.Build"/>) on Kestrel at 127.0.0.1, on Redis, sharing one
/// store of record with the other nodes (an <see cref="InMemoryChatStore"/> instance standing in for MongoDB).
/// </summary>
internal sealed class SampleNode : IAsyncDisposable
{
    private SampleNode(WebApplication app, Uri baseAddress)
    {
        App = app;
        BaseAddress = baseAddress;
    }

    public WebApplication App { get; }

    public Uri BaseAddress { get; }

    public IMessageBroadcaster Broadcaster => App.Services.GetRequiredService<IMessageBroadcaster>();

    public IConnectionRegistry Registry => App.Services.GetRequiredService<IConnectionRegistry>();

    public IBackgroundDispatcher Dispatcher => App.Services.GetRequiredService<IBackgroundDispatcher>();

    public RecordingPushNotifier Notifications => App.Services.GetRequiredService<RecordingPushNotifier>();

    public static async Task<SampleNode> StartAsync(string nodeId, string redis, string keyPrefix, IChatStore store, params string[] extraArgs)
    {
        string[] args =
        [
            "--environment=Development",
            "--urls=http://127.0.0.1:0",
            $"--ChatScale:NodeId={nodeId}",
            "--Logging:LogLevel:Default=None",
            $"--ConnectionStrings:Redis={redis}",
            $"--ChatScale:Redis:KeyPrefix={keyPrefix}",
            .. extraArgs,
        ];
        var app = ChatApp.Build(args, b =>
        {
            b.Services.AddSingleton(store);
            b.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new SampleNode(app, new Uri(address));
    }

    /// <summary>An HTTP client signed in as <paramref name="user"/> through the sample's dev token endpoint.</summary>
    public async Task<(HttpClient Http, string Token)> SignInAsync(string user)
    {
        var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<TokenResponse>())!.Token;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return (http, token);
    }

    /// <summary>A WebSocket for <paramref name="token"/>'s user (token in the query string, as the sample's page does).</summary>
    public async Task<ClientWebSocket> ConnectAsync(string token)
    {
        var socket = new ClientWebSocket();
        using var timeout = new CancellationTokenSource(Ws.Timeout);
        await socket.ConnectAsync(new Uri($"ws://{BaseAddress.Authority}{ChatApp.WebSocketPath}?access_token={Uri.EscapeDataString(token)}"), timeout.Token);
        return socket;
    }

    public async ValueTask DisposeAsync()
    {
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

    private sealed record TokenResponse(string User, string Token);
}
