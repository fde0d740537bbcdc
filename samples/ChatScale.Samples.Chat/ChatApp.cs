using ChatScale.Samples.Chat.Api;
using ChatScale.Samples.Chat.Auth;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.IdentityModel.Tokens;
using MongoDB.Driver;

namespace ChatScale.Samples.Chat;

/// <summary>Builds the chat app; <c>Program</c> runs it, the tests start several on loopback.</summary>
public static class ChatApp
{
    /// <summary>The WebSocket path.</summary>
    public const string WebSocketPath = "/ws";

    /// <summary>
    /// Builds the app from <paramref name="args"/> (command-line configuration, e.g. <c>--urls</c>,
    /// <c>--ConnectionStrings:Redis=...</c>) and the usual sources. With <c>ConnectionStrings:Redis</c> ChatScale uses
    /// Redis, otherwise its in-memory defaults; with <c>ConnectionStrings:Mongo</c> messages go to MongoDB, otherwise
    /// to an in-memory store.
    /// </summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="configure">Runs before services are added, so it can add configuration or replace services.</param>
    /// <returns>The app, not started.</returns>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,

            // The page is copied next to the assembly, so hosts started from another folder (tests) serve it too.
            WebRootPath = Path.Combine(AppContext.BaseDirectory, "wwwroot"),
        });
        configure?.Invoke(builder);

        var services = builder.Services;
        var configuration = builder.Configuration;
        services.AddProblemDetails();
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.PropertyNamingPolicy = ChatEvents.Json.PropertyNamingPolicy);
        services.TryAddSingleton(TimeProvider.System);

        AddAuthentication(builder);
        services.AddChatLimits();

        var chatScale = services.AddChatScale()
            .AddJobHandler<BroadcastMessageJob, BroadcastMessageHandler>(BroadcastMessageJob.JobName)
            .AddHealthChecks();
        var redis = configuration.GetConnectionString("Redis");
        if (!string.IsNullOrWhiteSpace(redis))
        {
            chatScale.AddRedis(o => o.ConnectionString = redis);
        }

        AddStore(services, configuration.GetConnectionString("Mongo"));

        services.TryAddSingleton<RecordingPushNotifier>();
        services.TryAddSingleton<IPushNotifier>(static sp => sp.GetRequiredService<RecordingPushNotifier>());

        var app = builder.Build();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseDefaultFiles();
        app.UseStaticFiles();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.MapChatApi();
        app.MapBlockApi();
        app.MapChannelApi();
        app.MapChatScale(WebSocketPath).RequireAuthorization();
        app.MapHealthChecks("/health");
        return app;
    }

    private static void AddAuthentication(WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var auth = builder.Configuration.GetSection(ChatAuthOptions.SectionName).Get<ChatAuthOptions>() ?? new ChatAuthOptions();
        if (auth.SigningKey is null && !builder.Environment.IsDevelopment())
        {
            throw new InvalidOperationException("Auth:SigningKey is required outside Development (the built-in key is public).");
        }

        services.AddOptions<ChatAuthOptions>().BindConfiguration(ChatAuthOptions.SectionName);
        services.AddSingleton<DevTokenIssuer>();
        services.AddAuthorization();
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(o =>
            {
                // Keep "sub" as "sub": ChatScale's default user-id resolver reads it.
                o.MapInboundClaims = false;
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = auth.Issuer,
                    ValidAudience = auth.Issuer,
                    IssuerSigningKey = DevTokenIssuer.SigningKey(auth),
                    NameClaimType = "sub",
                };
                o.Events = new JwtBearerEvents
                {
                    // Browsers cannot set headers on a WebSocket handshake, so /ws also takes the token from
                    // ?access_token= (the SignalR convention). It is validated like a header token; the user id
                    // still comes from its claims.
                    OnMessageReceived = context =>
                    {
                        if (context.HttpContext.Request.Path.StartsWithSegments(WebSocketPath)
                            && context.Request.Query.TryGetValue("access_token", out var token)
                            && !string.IsNullOrEmpty(token))
                        {
                            context.Token = token;
                        }

                        return Task.CompletedTask;
                    },
                };
            });
    }

    private static void AddStore(IServiceCollection services, string? mongo)
    {
        if (string.IsNullOrWhiteSpace(mongo))
        {
            services.TryAddSingleton<IChatStore, InMemoryChatStore>();
            services.TryAddSingleton<IBlockList, InMemoryBlockList>();
            return;
        }

        var url = MongoUrl.Create(mongo);
        services.TryAddSingleton<IMongoClient>(_ => new MongoClient(url));
        services.TryAddSingleton(sp => new MongoChatStore(sp.GetRequiredService<IMongoClient>().GetDatabase(url.DatabaseName ?? "chatscale_sample")));
        services.TryAddSingleton<IChatStore>(static sp => sp.GetRequiredService<MongoChatStore>());
        services.TryAddSingleton<IBlockList>(sp => new MongoBlockList(sp.GetRequiredService<IMongoClient>().GetDatabase(url.DatabaseName ?? "chatscale_sample")));
        services.AddHostedService<MongoIndexInitializer>();
    }
}
