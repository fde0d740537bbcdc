using System.Text;
using ChatScale.AspNetCore.Internal;
using ChatScale.AspNetCore.Tests.Infrastructure;
using ChatScale.InMemory;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Tests;

/// <summary>
/// Admission caps of one node (in-memory presence): per user, per node, and handshakes in progress. The Redis and
/// low-file-limit versions are in ChatScale.Reliability.Tests (Security/ConnectionCapTests, Security/FileLimitTests).
/// </summary>
public sealed class AdmissionTests
{
    private static Action<WebApplicationBuilder> Endpoint(Action<ChatScaleEndpointOptions> configure)
        => b => b.Services.Configure(configure);

    private static async Task<ClientWebSocket> RefusedAsync(TestNode node, string user, int expectedStatus)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.SetRequestHeader(TestAuthHandler.UserHeader, user);
        using var timeout = new CancellationTokenSource(TestClient.Timeout);
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(node.WebSocketUri, timeout.Token));
        Assert.Equal(expectedStatus, (int)socket.HttpStatusCode);
        Assert.Equal(ConnectionAdmission.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture), Assert.Single(socket.HttpResponseHeaders!["Retry-After"]));
        return socket;
    }

    [Fact]
    public async Task Connection_past_the_per_user_cap_gets_429_and_a_closed_one_frees_its_slot()
    {
        await using var node = await TestNode.StartAsync(configure: Endpoint(o => o.MaxConnectionsPerUser = 2));
        using var first = await node.ConnectAsync("alice");
        using var second = await node.ConnectAsync("alice");

        (await RefusedAsync(node, "alice", StatusCodes.Status429TooManyRequests)).Dispose();
        Assert.Equal(2, await node.Registry.GetConnectionCountAsync("alice"));

        await first.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
        await Poll.UntilAsync(() => node.Services.GetRequiredService<ConnectionAdmission>().Open == 1, "the closed connection released its slot");
        using var third = await node.ConnectAsync("alice");
        await node.Broadcaster.PublishAsync(["alice"], Encoding.UTF8.GetBytes("""{"n":1}"""));
        Assert.Equal("""{"n":1}""", await second.ReceiveTextAsync());
        Assert.Equal("""{"n":1}""", await third.ReceiveTextAsync());
    }

    [Fact]
    public async Task Connection_past_the_node_cap_gets_503_with_retry_after_and_the_node_keeps_serving()
    {
        await using var node = await TestNode.StartAsync(configure: Endpoint(o => o.MaxConnections = 3));
        var open = new[] { await node.ConnectAsync("a"), await node.ConnectAsync("b"), await node.ConnectAsync("c") };

        (await RefusedAsync(node, "d", StatusCodes.Status503ServiceUnavailable)).Dispose();
        Assert.Equal(0, await node.Registry.GetConnectionCountAsync("d"));

        await node.Broadcaster.PublishAsync(["a", "b", "c"], Encoding.UTF8.GetBytes("""{"full":true}"""));
        foreach (var socket in open)
        {
            Assert.Equal("""{"full":true}""", await socket.ReceiveTextAsync());
            socket.Dispose();
        }
    }

    [Fact]
    public async Task Handshakes_past_the_concurrent_upgrade_limit_wait_for_a_slot_without_touching_presence()
    {
        var gate = new GatedRegistry();
        await using var node = await TestNode.StartAsync(configure: b =>
        {
            b.Services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(sp => gate.Wrap(sp.GetRequiredService<IOptions<ChatScaleOptions>>())));
            b.Services.Configure<ChatScaleEndpointOptions>(o => o.MaxConcurrentUpgrades = 2);
        });

        // Two handshakes are held inside presence registration; a third waits for a slot, before presence.
        var pending = new[] { node.ConnectAsync("a"), node.ConnectAsync("b") };
        await Poll.UntilAsync(() => gate.Waiting == 2, "two registrations in progress");
        var third = node.ConnectAsync("c");
        await Poll.UntilAsync(() => node.Services.GetRequiredService<ConnectionAdmission>().Open == 3, "the third handshake is admitted and waiting");
        Assert.Equal(2, gate.Registrations);
        Assert.False(third.IsCompleted);

        gate.Open();
        foreach (var socket in await Task.WhenAll([.. pending, third]))
        {
            Assert.Equal(WebSocketState.Open, socket.State);
            socket.Dispose();
        }

        Assert.Equal(3, gate.Registrations);
    }

    [Fact]
    public async Task A_handshake_that_waits_too_long_for_an_upgrade_slot_gets_503_with_retry_after()
    {
        var gate = new GatedRegistry();
        await using var node = await TestNode.StartAsync(configure: b =>
        {
            b.Services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry>(sp => gate.Wrap(sp.GetRequiredService<IOptions<ChatScaleOptions>>())));
            b.Services.Configure<ChatScaleEndpointOptions>(o => o.MaxConcurrentUpgrades = 1);
        });
        var held = node.ConnectAsync("a");
        await Poll.UntilAsync(() => gate.Waiting == 1, "one registration in progress");

        (await RefusedAsync(node, "b", StatusCodes.Status503ServiceUnavailable)).Dispose();

        Assert.Equal(1, gate.Registrations);
        gate.Open();
        (await held).Dispose();
    }

    [Theory]
    [InlineData("ChatScale:Endpoint:MaxConnectionsPerUser", "-1")]
    [InlineData("ChatScale:Endpoint:MaxConnections", "0")]
    [InlineData("ChatScale:Endpoint:MaxConcurrentUpgrades", "-1")]
    public async Task Invalid_cap_fails_startup_naming_the_option(string key, string value)
    {
        await using var app = TestNode.Build(configure: b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { [key] = value }));

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(key, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kestrel_connection_limit_defaults_to_a_quarter_of_the_file_limit_and_the_hosts_setting_wins()
    {
        var services = new ServiceCollection().AddChatScale().Services;
        services.AddOptions<KestrelServerOptions>();
        var fromDefault = services.BuildServiceProvider().GetRequiredService<IOptions<KestrelServerOptions>>().Value;
        Assert.Equal(FileDescriptorLimit.Budget?.Http, fromDefault.Limits.MaxConcurrentConnections);

        services.Configure<KestrelServerOptions>(o => o.Limits.MaxConcurrentConnections = 7);
        Assert.Equal(7, services.BuildServiceProvider().GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits.MaxConcurrentConnections);
    }

    [Theory]
    [InlineData("Max open files            1024                 1048576              files     \n", 1024L)]
    [InlineData("Max cpu time              unlimited            unlimited            seconds   \nMax open files            256                  256                  files     \n", 256L)]
    [InlineData("Max open files            unlimited            unlimited            files     \n", null)]
    [InlineData("", null)]
    public void File_limit_is_read_from_proc_limits(string limits, long? expected)
    {
        Assert.Equal(expected, FileDescriptorLimit.Parse(limits));
    }

    [Fact]
    public void What_is_left_of_the_file_limit_goes_two_thirds_to_websockets_and_one_third_to_http()
    {
        // ulimit -n 1024 with 280 descriptors open at start (a web app's assemblies): 476 left after the margin
        // (128 + 140).
        var budget = FileDescriptorLimit.Split(1024, 280);

        Assert.Equal(1024 - 280 - FileDescriptorLimit.GrowthMargin(280), budget.WebSockets + budget.Http + 1);
        Assert.Equal(317, budget.WebSockets);
        Assert.Equal(158, budget.Http);
    }

    /// <summary>In-memory presence whose registrations wait until the test opens the gate.</summary>
    private sealed class GatedRegistry
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _waiting;
        private int _registrations;

        public int Waiting => Volatile.Read(ref _waiting);

        public int Registrations => Volatile.Read(ref _registrations);

        public void Open() => _open.TrySetResult();

        public IConnectionRegistry Wrap(IOptions<ChatScaleOptions> options) => new Registry(this, new InMemoryConnectionRegistry(options));

        private sealed class Registry(GatedRegistry gate, InMemoryConnectionRegistry inner) : IConnectionRegistry
        {
            public async ValueTask RegisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default)
            {
                Interlocked.Increment(ref gate._registrations);
                Interlocked.Increment(ref gate._waiting);
                await gate._open.Task.WaitAsync(cancellationToken);
                Interlocked.Decrement(ref gate._waiting);
                await inner.RegisterAsync(connection, cancellationToken);
            }

            public ValueTask UnregisterAsync(ConnectionRegistration connection, CancellationToken cancellationToken = default) => inner.UnregisterAsync(connection, cancellationToken);

            public ValueTask<PresenceLookup> LocateAsync(IReadOnlyList<string> userIds, CancellationToken cancellationToken = default) => inner.LocateAsync(userIds, cancellationToken);

            public ValueTask<int> GetConnectionCountAsync(string userId, CancellationToken cancellationToken = default) => inner.GetConnectionCountAsync(userId, cancellationToken);

            public ValueTask HeartbeatAsync(string nodeId, CancellationToken cancellationToken = default) => inner.HeartbeatAsync(nodeId, cancellationToken);

            public ValueTask RemoveNodeAsync(string nodeId, CancellationToken cancellationToken = default) => inner.RemoveNodeAsync(nodeId, cancellationToken);
        }
    }
}
