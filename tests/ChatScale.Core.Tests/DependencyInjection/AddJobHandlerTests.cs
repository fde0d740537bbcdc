using ChatScale.Dispatching;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Core.Tests.DependencyInjection;

public sealed class AddJobHandlerTests
{
    [Fact]
    public void AddJobHandler_twice_for_one_job_type_keeps_one_registration_and_the_last_handler()
    {
        var services = new ServiceCollection();
        var builder = new Builder(services);

        builder.AddJobHandler<Ping, FirstHandler>(name: "ping-v1");
        builder.AddJobHandler<Ping, SecondHandler>(name: "ping-v2");
        builder.AddJobHandler<Pong, FirstPongHandler>();

        using var provider = services.BuildServiceProvider();
        var registrations = provider.GetServices<JobTypeRegistration>().ToList();
        Assert.Equal(2, registrations.Count);
        Assert.Equal("ping-v2", Assert.Single(registrations, r => r.JobType == typeof(Ping)).Name);
        using var scope = provider.CreateScope();
        Assert.IsType<SecondHandler>(Assert.Single(scope.ServiceProvider.GetServices<IJobHandler<Ping>>()));
    }

    private sealed class Builder(IServiceCollection services) : IChatScaleBuilder
    {
        public IServiceCollection Services { get; } = services;
    }

    public sealed record Ping;

    public sealed record Pong;

    private sealed class FirstHandler : IJobHandler<Ping>
    {
        public ValueTask HandleAsync(Ping job, JobContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class SecondHandler : IJobHandler<Ping>
    {
        public ValueTask HandleAsync(Ping job, JobContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class FirstPongHandler : IJobHandler<Pong>
    {
        public ValueTask HandleAsync(Pong job, JobContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
