using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Runs the registered <see cref="IBackgroundDispatcher"/>'s workers with the host, when the dispatcher is itself an
/// <see cref="IHostedService"/> that is not already registered as one (so it never starts twice).
/// </summary>
internal sealed class BackgroundDispatcherService : IHostedService
{
    private readonly IServiceProvider _services;
    private IHostedService? _dispatcher;

    public BackgroundDispatcherService(IServiceProvider services) => _services = services;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (_services.GetService<IBackgroundDispatcher>() is not IHostedService dispatcher)
        {
            return Task.CompletedTask;
        }

        foreach (var hosted in _services.GetServices<IHostedService>())
        {
            if (ReferenceEquals(hosted, dispatcher))
            {
                return Task.CompletedTask;
            }
        }

        _dispatcher = dispatcher;
        return dispatcher.StartAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => _dispatcher?.StopAsync(cancellationToken) ?? Task.CompletedTask;
}
