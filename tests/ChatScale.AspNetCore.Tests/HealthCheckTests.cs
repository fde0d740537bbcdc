using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Tests;

public sealed class HealthCheckTests
{
    [Fact]
    public async Task Backplane_is_healthy_when_presence_answers()
    {
        await using var services = Build(out _, out _);

        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        Assert.Equal(HealthStatus.Healthy, report.Entries[ChatScaleHealthCheckExtensions.BackplaneCheckName].Status);
    }

    [Fact]
    public async Task Backplane_is_unhealthy_when_presence_fails()
    {
        await using var services = Build(out var registry, out _);
        registry().FailLookups = true;

        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        var entry = report.Entries[ChatScaleHealthCheckExtensions.BackplaneCheckName];
        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.IsType<BackplaneUnavailableException>(entry.Exception);
    }

    [Fact]
    public async Task Backplane_is_unhealthy_while_the_node_is_not_receiving_even_though_presence_answers()
    {
        var readiness = new BackplaneReadiness();
        await using var services = Build(out _, out _, extra: s => s.AddSingleton(readiness));
        readiness.MarkNotReceiving("the subscription connection failed");

        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        var entry = report.Entries[ChatScaleHealthCheckExtensions.BackplaneCheckName];
        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Contains("the subscription connection failed", entry.Description, StringComparison.Ordinal);

        readiness.MarkReceiving();
        report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, report.Entries[ChatScaleHealthCheckExtensions.BackplaneCheckName].Status);
    }

    [Theory]
    [InlineData(0, 0, HealthStatus.Healthy)]
    [InlineData(99, 0, HealthStatus.Healthy)]
    [InlineData(100, 0, HealthStatus.Degraded)]
    [InlineData(0, 5, HealthStatus.Degraded)]
    [InlineData(1000, 0, HealthStatus.Unhealthy)]
    public async Task Dispatcher_backlog_is_compared_with_the_thresholds(long pending, long deadLettered, HealthStatus expected)
    {
        await using var services = Build(out _, out var dispatcher, o => (o.DegradedBacklog, o.UnhealthyBacklog, o.DegradedDeadLettered) = (100, 1000, 5));
        dispatcher.Statistics = new DispatcherStatistics(pending, 3, deadLettered);

        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        var entry = report.Entries[ChatScaleHealthCheckExtensions.DispatcherCheckName];
        Assert.Equal(expected, entry.Status);
        Assert.Equal(pending, entry.Data["pending"]);
    }

    [Fact]
    public async Task Adding_health_checks_twice_keeps_one_of_each()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddChatScale().AddHealthChecks().AddHealthChecks();
        await using var provider = services.BuildServiceProvider();

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        Assert.Equal(2, report.Entries.Count);
    }

    private static ServiceProvider Build(out Func<SpyRegistry> registry, out FakeDispatcher dispatcher, Action<ChatScaleHealthCheckOptions>? configure = null, Action<IServiceCollection>? extra = null)
    {
        var services = new ServiceCollection().AddLogging();
        extra?.Invoke(services);
        services.AddChatScale().AddHealthChecks(configure);
        services.Replace(ServiceDescriptor.Singleton<IConnectionRegistry, SpyRegistry>());
        var fake = dispatcher = new FakeDispatcher();
        services.AddSingleton<IBackgroundDispatcher>(fake);
        var provider = services.BuildServiceProvider();
        registry = () => (SpyRegistry)provider.GetRequiredService<IConnectionRegistry>();
        return provider;
    }
}
