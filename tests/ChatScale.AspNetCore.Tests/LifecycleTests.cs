using System.Text;
using ChatScale.AspNetCore.Tests.Infrastructure;
using ChatScale.Connections;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Tests;

/// <summary>One in-memory node: presence on every exit path, heartbeats, graceful shutdown, options at startup.</summary>
public sealed class LifecycleTests
{
    [Fact]
    public async Task Client_close_removes_presence_and_the_local_connection()
    {
        await using var node = await TestNode.StartAsync();
        using var client = await node.ConnectAsync("alice");
        Assert.Equal(1, await node.Registry.GetConnectionCountAsync("alice"));

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        Assert.Equal(WebSocketState.Closed, client.State);
        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "presence is removed");
        await Poll.UntilAsync(() => node.Connections.Count == 0, "the local connection is removed");
    }

    [Fact]
    public async Task Client_abort_removes_presence_and_the_local_connection()
    {
        await using var node = await TestNode.StartAsync();
        using var client = await node.ConnectAsync("alice");
        using var other = await node.ConnectAsync("alice");
        Assert.Equal(2, await node.Registry.GetConnectionCountAsync("alice"));

        client.Abort();

        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 1, "the aborted connection leaves presence");
        await Poll.UntilAsync(() => node.Connections.Count == 1, "the aborted connection leaves the node");
        await node.Broadcaster.PublishAsync(["alice"], Encoding.UTF8.GetBytes("""{"still":"here"}"""));
        Assert.Equal("""{"still":"here"}""", await other.ReceiveTextAsync());
    }

    [Fact]
    public async Task Client_that_stops_answering_keep_alive_pings_is_dropped_and_leaves_presence()
    {
        await using var node = await TestNode.StartAsync(configure: b => b.Services.Configure<ChatScaleEndpointOptions>(o =>
            (o.KeepAliveInterval, o.KeepAliveTimeout) = (TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(300))));

        // A ClientWebSocket answers pings only while it reads; this one never reads, like a client whose network died.
        using var silent = await node.ConnectAsync("alice");
        Assert.Equal(1, await node.Registry.GetConnectionCountAsync("alice"));

        await Poll.UntilAsync(async () => await node.Registry.GetConnectionCountAsync("alice") == 0, "the unresponsive client is dropped");
        Assert.Equal(0, node.Connections.Count);
    }

    [Fact]
    public async Task Graceful_stop_closes_clients_with_1001_and_removes_presence_at_once()
    {
        var node = await TestNode.StartAsync();
        await using (node)
        {
            using var alice = await node.ConnectAsync("alice");
            using var bob = await node.ConnectAsync("bob");
            var aliceClose = alice.ReceiveCloseAsync();
            var bobClose = bob.ReceiveCloseAsync();

            await node.StopAsync();

            // "At once": when StopAsync returns, no polling.
            Assert.Equal(0, await node.Registry.GetConnectionCountAsync("alice"));
            Assert.Equal(0, await node.Registry.GetConnectionCountAsync("bob"));
            Assert.Equal(0, node.Connections.Count);
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await aliceClose);
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await bobClose);
        }
    }

    [Fact]
    public async Task A_connection_closed_before_its_upgrade_completed_gets_the_close_frame_after_its_101_not_an_abort()
    {
        // The close comes while the connection is registering, after it joined the node (as a shutdown, a token expiry
        // or a slow-consumer close may): before the fix the transport had no socket yet, dropped the close, and the
        // client got its 101 and then, 5 s later, an aborted socket.
        var registering = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        SpyRegistry? spy = null;
        await using var node = await TestNode.StartAsync(configure: b => b.Services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(sp => spy = new SpyRegistry(sp.GetRequiredService<IOptions<ChatScaleOptions>>()))));
        spy!.BeforeRegister = async () =>
        {
            registering.TrySetResult();
            await release.Task;
        };

        var connecting = node.ConnectAsync("alice");
        await registering.Task.WaitAsync(TestClient.Timeout);
        var closing = node.Connections.CloseAllAsync(ConnectionCloseStatus.GoingAway, "Server shutting down.", TimeSpan.FromSeconds(5));
        release.SetResult();

        using var alice = await connecting;
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await alice.ReceiveCloseAsync());
        await closing.WaitAsync(TestClient.Timeout);
    }

    [Fact]
    public async Task Graceful_stop_sends_queued_frames_before_closing()
    {
        await using var node = await TestNode.StartAsync();
        using var alice = await node.ConnectAsync("alice");
        await node.Broadcaster.PublishAsync(["alice"], Encoding.UTF8.GetBytes("""{"last":"words"}"""));

        var stopping = node.StopAsync();

        Assert.Equal("""{"last":"words"}""", await alice.ReceiveTextAsync());
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await alice.ReceiveCloseAsync());
        await stopping;
    }

    [Fact]
    public async Task Heartbeats_start_before_serving_repeat_and_end_with_leaving_presence()
    {
        SpyRegistry? spy = null;
        var node = await TestNode.StartAsync(
            o => (o.HeartbeatInterval, o.PresenceTimeout) = (TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(30)),
            // The same move AddRedis makes: replace the in-memory registry after AddChatScale.
            b => b.Services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(sp => spy = new SpyRegistry(sp.GetRequiredService<IOptions<ChatScaleOptions>>()))));
        await using (node)
        {
            Assert.NotNull(spy);
            Assert.Equal("heartbeat " + node.NodeId, spy.Calls.First());
            using (await node.ConnectAsync("alice"))
            {
                await Poll.UntilAsync(() => spy.Heartbeats >= 3, "heartbeats repeat");
            }

            await node.StopAsync();

            // StopAsync awaited the heartbeat loop, so nothing marks the node alive again after it left presence.
            var calls = spy.Calls.ToList();
            var removed = calls.IndexOf("remove " + node.NodeId);
            Assert.True(removed > 0, "the node leaves presence on stop");
            Assert.DoesNotContain(calls.Skip(removed), c => c.StartsWith("heartbeat", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task New_connections_are_refused_once_shutdown_began()
    {
        await using var node = await TestNode.StartAsync();
        var state = node.Services.GetRequiredService<Internal.ChatScaleNodeState>();

        state.StopAccepting();

        Assert.Equal(503, await node.ConnectExpectingStatusAsync("alice"));
        Assert.Equal(0, node.Connections.Count);
        Assert.Equal(0, await node.Registry.GetConnectionCountAsync("alice"));
    }

    [Fact]
    public async Task Presence_failure_refuses_the_connection_with_503_and_leaves_nothing_behind()
    {
        var spy = default(SpyRegistry);
        await using var node = await TestNode.StartAsync(configure: b => b.Services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(sp =>
            spy = new SpyRegistry(sp.GetRequiredService<IOptions<ChatScaleOptions>>()) { FailRegistrations = true })));

        Assert.Equal(503, await node.ConnectExpectingStatusAsync("alice"));

        Assert.Equal(0, node.Connections.Count);
        await Poll.UntilAsync(() => spy!.Calls.Contains("unregister alice"), "a possibly half-written registration is undone");
    }

    [Fact]
    public async Task Invalid_options_in_code_fail_startup_naming_the_option()
    {
        await using var app = TestNode.Build(o => o.PresenceTimeout = o.HeartbeatInterval);

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains("ChatScale:PresenceTimeout", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_options_in_configuration_fail_startup_naming_the_option()
    {
        await using var app = TestNode.Build(configure: b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ChatScale:SendQueueCapacity"] = "0",
        }));

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains("ChatScale:SendQueueCapacity", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_endpoint_options_fail_startup_naming_the_option()
    {
        await using var app = TestNode.Build(configure: b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ChatScale:Endpoint:AllowedOrigins:0"] = "https://chat.example.com/app",
        }));

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains("ChatScale:Endpoint:AllowedOrigins", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_bind_from_configuration_and_code_wins()
    {
        await using var node = await TestNode.StartAsync(
            o => o.SendQueueCapacity = 7,
            b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ChatScale:NodeId"] = "node-from-config",
                ["ChatScale:SendQueueCapacity"] = "99",
                ["ChatScale:Endpoint:AllowedOrigins:0"] = "https://chat.example.com",
                ["ChatScale:Endpoint:MessagesPerSecond"] = "3",
            }));

        var options = node.Services.GetRequiredService<IOptions<ChatScaleOptions>>().Value;
        var endpoint = node.Services.GetRequiredService<IOptions<ChatScaleEndpointOptions>>().Value;
        Assert.Equal("node-from-config", node.NodeId);
        Assert.Equal(7, options.SendQueueCapacity);
        Assert.Equal(["https://chat.example.com"], endpoint.AllowedOrigins);
        Assert.Equal(3, endpoint.MessagesPerSecond);
    }

    [Fact]
    public void MapChatScale_without_AddChatScale_says_what_is_missing()
    {
        var builder = WebApplication.CreateSlimBuilder();
        var app = builder.Build();

        var ex = Assert.Throws<InvalidOperationException>(() => app.MapChatScale());

        Assert.Contains("AddChatScale", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dispatcher_that_is_a_hosted_service_runs_with_the_host()
    {
        var dispatcher = new FakeDispatcher();
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddChatScale();
        builder.Services.AddSingleton<IBackgroundDispatcher>(dispatcher);
        using var host = builder.Build();

        await host.StartAsync();
        Assert.Equal((1, 0), (dispatcher.Starts, dispatcher.Stops));
        await host.StopAsync();

        Assert.Equal((1, 1), (dispatcher.Starts, dispatcher.Stops));
    }

    [Fact]
    public async Task A_dispatcher_already_registered_as_a_hosted_service_is_not_started_twice()
    {
        var dispatcher = new FakeDispatcher();
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddChatScale();
        builder.Services.AddSingleton<IBackgroundDispatcher>(dispatcher);
        builder.Services.AddSingleton<IHostedService>(dispatcher);
        using var host = builder.Build();

        await host.StartAsync();
        await host.StopAsync();

        Assert.Equal((1, 1), (dispatcher.Starts, dispatcher.Stops));
    }

    [Fact]
    public void AddChatScale_twice_registers_each_service_once()
    {
        var services = new ServiceCollection();
        services.AddChatScale();
        services.AddChatScale();

        Assert.Single(services, d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(Internal.ChatScaleNodeService));
        Assert.Single(services, d => d.ServiceType == typeof(IConnectionRegistry));
        Assert.Single(services, d => d.ServiceType == typeof(IConfigureOptions<ChatScaleOptions>));
    }
}
