using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.AspNetCore.Internal;

internal sealed class ChatScaleBuilder(IServiceCollection services) : IChatScaleBuilder
{
    public IServiceCollection Services { get; } = services;
}
