using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.WebSockets;
using ChatScale.Samples.Chat.Delivery;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ChatScale.Samples.Chat.Tests.Infrastructure;

/// <summary>One sample node: the real app (<see cref="ChatApp.Build"/>) on Kestrel at 127.0.0.1 on a free port, in Development.</summary>
public sealed class ChatNode : IAsyncDisposable
{
    private bool _disposed;

    private ChatNode(WebApplication app, Uri baseAddress, string nodeId)
    {
        App = app;
        BaseAddress = baseAddress;
        NodeId = nodeId;
    }

    public WebApplication App { get; }

    public Uri BaseAddress { get; }

    public string NodeId { get; }

    public RecordingPushNotifier Notifications => App.Services.GetRequiredService<RecordingPushNotifier>();

    /// <summary>Starts a node. Null connection strings leave the embedded defaults in place.</summary>
    /// <param name="port">0 for a free port; a fixed port to restart a node where its clients expect it.</param>
    public static async Task<ChatNode> StartAsync(string nodeId, string? redis, string? redisKeyPrefix, string? mongo, int port = 0, Action<WebApplicationBuilder>? configure = null)
    {
        var args = new List<string>
        {
            "--environment=Development",
            $"--urls=http://127.0.0.1:{port}",
            $"--ChatScale:NodeId={nodeId}",
            "--Logging:LogLevel:Default=Warning",
        };
        if (redis is not null)
        {
            args.Add($"--ConnectionStrings:Redis={redis}");
            args.Add($"--ChatScale:Redis:KeyPrefix={redisKeyPrefix}");
        }

        if (mongo is not null)
        {
            args.Add($"--ConnectionStrings:Mongo={mongo}");
        }

        var app = ChatApp.Build([.. args], b =>
        {
            b.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
            configure?.Invoke(b);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ChatNode(app, new Uri(address), nodeId);
    }

    /// <summary>An HTTP client for <paramref name="user"/>, signed in through the dev token endpoint.</summary>
    public async Task<ChatUser> SignInAsync(string user)
    {
        var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        var response = await http.PostAsJsonAsync("/api/dev/token", new { user });
        response.EnsureSuccessStatusCode();
        var token = (await response.Content.ReadFromJsonAsync<TokenResponse>())!.Token;
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return new ChatUser(user, token, http, this);
    }

    public Uri WebSocketUri(string? token)
        => new($"ws://{BaseAddress.Authority}{ChatApp.WebSocketPath}{(token is null ? string.Empty : "?access_token=" + Uri.EscapeDataString(token))}");

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await App.StopAsync(timeout.Token);
        await App.DisposeAsync();
    }

    private sealed record TokenResponse(string User, string Token);
}
