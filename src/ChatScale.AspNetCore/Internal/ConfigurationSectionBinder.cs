using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Binds options from a configuration section when the host has an <see cref="IConfiguration"/>, and does nothing
/// otherwise (a bare service collection in a test or a worker without configuration).
/// </summary>
internal abstract class ConfigurationSectionBinder<TOptions> : IConfigureOptions<TOptions>
    where TOptions : class
{
    private readonly IServiceProvider _services;
    private readonly string _section;

    protected ConfigurationSectionBinder(IServiceProvider services, string section)
    {
        _services = services;
        _section = section;
    }

    public void Configure(TOptions options) => _services.GetService<IConfiguration>()?.GetSection(_section).Bind(options);
}

internal sealed class ChatScaleOptionsBinder(IServiceProvider services)
    : ConfigurationSectionBinder<ChatScaleOptions>(services, ChatScaleOptions.SectionName);

internal sealed class ChatScaleEndpointOptionsBinder(IServiceProvider services)
    : ConfigurationSectionBinder<ChatScaleEndpointOptions>(services, ChatScaleEndpointOptions.SectionName);
