using System.Globalization;
using System.Text.Json;
using ChatScale.AspNetCore;
using GroupManager = ChatScale.Groups.IGroupManager;
using ChatScale.Redis;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ChatScale.LoadTest;

/// <summary>
/// One node of the system under test, run as its own process (<c>node --system chatscale|signalr</c>) so the driver
/// can read its CPU time and peak memory from /proc. Both kinds are the same slim Kestrel host with the same header
/// authentication and the same <c>POST /send?g=GROUP&amp;s=SIZE</c> endpoint, whose body (UTF-8 JSON) is the message.
/// </summary>
internal static class NodeHost
{
    public static async Task<int> RunAsync(Args args)
    {
        var system = args.Get("system", "chatscale");
        var port = args.GetInt("port", 5000);
        var redis = args.Get("redis", "127.0.0.1:6379");
        var users = args.GetInt("users", 1000);
        var nodeId = args.Get("node-id", "node-" + port.ToString(CultureInfo.InvariantCulture));

        // --floor (the floor verb): POST /send parses the request exactly as below and returns without publishing,
        // so its CPU is what the HTTP request itself costs, the floor both systems share.
        var floor = args.Has("floor");

        // --timeline (the driver's --timeline DIR): GC pauses, thread-pool changes, stalls, for GET /timeline.
        var timeline = args.Has("timeline") ? Timeline.Start() : null;

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxConcurrentConnections = null);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddAuthentication(HeaderAuthHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, HeaderAuthHandler>(HeaderAuthHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        var groupCache = new GroupCache(users);

        WebApplication app;
        if (system == "chatscale")
        {
            var chatScale = builder.Services.AddChatScale(o => o.NodeId = nodeId)
                .AddRedis(o =>
                {
                    o.ConnectionString = redis;
                    o.RoutingMode = args.Get("routing", "targeted") == "broadcast" ? RedisRoutingMode.Broadcast : RedisRoutingMode.Targeted;
                    o.UseShardedPubSub = args.Has("sharded");
                });
            // Diagnostics only (--diag-no-jobs, --diag-keepalive N of the driver): no background dispatcher, another keep-alive.
            if (!args.Has("no-jobs"))
            {
                chatScale.AddJobHandler<BroadcastJob, BroadcastJobHandler>();
            }

            builder.Services.AddSingleton(groupCache);
            // The clients never send, so the per-connection rate limit is moot; switched off as the issue asks.
            builder.Services.Configure<ChatScaleEndpointOptions>(o =>
            {
                o.MessagesPerSecond = 0;
                if (args.Has("keepalive-seconds"))
                {
                    o.KeepAliveInterval = TimeSpan.FromSeconds(args.GetInt("keepalive-seconds", 15));
                }
            });
            app = builder.Build();
            app.MapChatScale("/ws");
            app.MapPost("/send", async (HttpContext context, IMessageBroadcaster broadcaster) =>
            {
                var recipients = groupCache.Get(context.Request);
                var body = await ReadBodyAsync(context.Request);
                if (floor)
                {
                    return Results.Accepted();
                }

                await broadcaster.PublishAsync(recipients, body, context.RequestAborted);
                return Results.Accepted();
            });
            app.MapPost("/send-group", async (HttpContext context, GroupManager groups) =>
            {
                var (group, size) = GroupCache.Parse(context.Request);
                var body = await ReadBodyAsync(context.Request);
                await groups.PublishToGroupAsync(GroupCache.GroupName(group, size), body, cancellationToken: context.RequestAborted);
                return Results.Accepted();
            });
            app.MapPost("/groups/setup", async (HttpContext context, GroupManager groups) =>
            {
                var size = int.Parse(context.Request.Query["s"].ToString(), CultureInfo.InvariantCulture);
                var count = Math.Max(1, users / size);
                var pairs = Enumerable.Range(0, count).SelectMany(g => groupCache.Get(g, size).Select(u => (Group: GroupCache.GroupName(g, size), User: u)));
                await Parallel.ForEachAsync(pairs, new ParallelOptions { MaxDegreeOfParallelism = 64, CancellationToken = context.RequestAborted }, async (p, ct) => await groups.AddToGroupAsync(p.Group, p.User, ct));
                return Results.Ok();
            });
            app.MapPost("/send-bg", async (HttpContext context, IBackgroundDispatcher dispatcher) =>
            {
                var (group, size) = GroupCache.Parse(context.Request);
                var body = await ReadBodyAsync(context.Request);
                var key = "g" + group.ToString(CultureInfo.InvariantCulture);
                await dispatcher.EnqueueAsync(new BroadcastJob(group, size, body), key, context.RequestAborted);
                return Results.Accepted();
            });
        }
        else if (system == "signalr")
        {
            builder.Services.AddSignalR(o =>
            {
                // Same keep-alive as ChatScale's default (15 s); the client timeout is generous because the load
                // clients only listen.
                o.KeepAliveInterval = TimeSpan.FromSeconds(15);
                o.ClientTimeoutInterval = TimeSpan.FromMinutes(10);
            }).AddStackExchangeRedis(redis, o => o.Configuration.ChannelPrefix = RedisChannel.Literal("bench"));
            app = builder.Build();
            app.MapHub<BenchHub>("/hub").RequireAuthorization();
            app.MapPost("/send", async (HttpContext context, IHubContext<BenchHub> hub) =>
            {
                var recipients = groupCache.Get(context.Request);
                var body = await ReadBodyAsync(context.Request);
                if (floor)
                {
                    return Results.Accepted();
                }

                // The body is already JSON: pass it as a JsonElement so SignalR writes it as is, not as a string.
                using var document = JsonDocument.Parse(body);
                await hub.Clients.Users(recipients).SendAsync("m", document.RootElement, context.RequestAborted);
                return Results.Accepted();
            });
        }
        else
        {
            Console.Error.WriteLine($"unknown system '{system}'");
            return 2;
        }

        app.MapGet("/ready", () => Results.Ok());
        // For the cold row: how much this process has JIT-compiled so far (methods, milliseconds); then the thread-pool
        // work items it has run so far (the thread hops per message, over the measured phase).
        app.MapGet("/jit", () => Results.Text(string.Create(CultureInfo.InvariantCulture, $"{System.Runtime.JitInfo.GetCompiledMethodCount()} {System.Runtime.JitInfo.GetCompilationTime().TotalMilliseconds:F1} {ThreadPool.CompletedWorkItemCount}")));
        if (timeline is not null)
        {
            app.MapGet("/timeline", (long from) => Results.Text(timeline.Since(from)));
        }

        // GC counts and pause time so far: gen0 gen1 gen2 collections, total pause ms.
        app.MapGet("/gc-stats", () => Results.Text(string.Create(CultureInfo.InvariantCulture, $"{GC.CollectionCount(0)} {GC.CollectionCount(1)} {GC.CollectionCount(2)} {GC.GetTotalPauseDuration().TotalMilliseconds:F1}")));
        // For the idle-connection test: a full blocking GC, then the managed heap and the connection count.
        app.MapPost("/gc", () =>
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
            GC.Collect();
            return Results.Text(GC.GetTotalMemory(false).ToString(CultureInfo.InvariantCulture));
        });
        await app.StartAsync();
        Console.WriteLine($"READY {Environment.ProcessId}");

        // The driver owns this process: when it closes our stdin (or dies), stop.
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        _ = Task.Run(async () =>
        {
            await Console.In.ReadToEndAsync();
            lifetime.StopApplication();
        });
        await app.WaitForShutdownAsync();
        return 0;
    }

    internal static async Task<byte[]> ReadBodyAsync(HttpRequest request)
    {
        var length = (int)(request.ContentLength ?? 0);
        if (length > 0)
        {
            var buffer = new byte[length];
            await request.Body.ReadExactlyAsync(buffer, request.HttpContext.RequestAborted);
            return buffer;
        }

        using var copy = new MemoryStream();
        await request.Body.CopyToAsync(copy, request.HttpContext.RequestAborted);
        return copy.ToArray();
    }
}
