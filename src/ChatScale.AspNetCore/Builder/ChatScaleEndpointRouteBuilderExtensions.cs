using System.Diagnostics.CodeAnalysis;
using ChatScale.AspNetCore;
using ChatScale.AspNetCore.Internal;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the ChatScale WebSocket endpoint.</summary>
public static class ChatScaleEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the WebSocket endpoint clients connect to. It requires an authenticated user (401 otherwise, even without
    /// <c>RequireAuthorization()</c>), whose id comes from <see cref="IUserIdResolver"/>; checks the <c>Origin</c>
    /// header (403; see <see cref="ChatScaleEndpointOptions.AllowedOrigins"/>); registers the connection in presence
    /// before completing the upgrade, so it is reachable from every node by the time the client sees it open; then
    /// reads client messages (see <see cref="IClientMessageHandler"/>) until the connection ends, and leaves presence
    /// on every exit path. The WebSocket middleware is included; <c>app.UseWebSockets()</c> is not needed.
    /// </summary>
    /// <param name="endpoints">The application's endpoint route builder.</param>
    /// <param name="pattern">The route, <c>/ws</c> by default.</param>
    /// <returns>The endpoint's convention builder, for <c>RequireAuthorization()</c>, <c>RequireCors()</c>, <c>RequireRateLimiting()</c> and the like.</returns>
    /// <exception cref="InvalidOperationException"><c>AddChatScale()</c> was not called.</exception>
    /// <example>
    /// <code>
    /// app.MapChatScale("/ws").RequireAuthorization();
    /// </code>
    /// </example>
    public static IEndpointConventionBuilder MapChatScale(this IEndpointRouteBuilder endpoints, [StringSyntax("Route")] string pattern = "/ws")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        if (endpoints.ServiceProvider.GetService<IServiceProviderIsService>()?.IsService(typeof(ChatScaleEndpoint)) != true)
        {
            throw new InvalidOperationException("ChatScale's services are missing: call builder.Services.AddChatScale() before app.MapChatScale().");
        }

        var pipeline = endpoints.CreateApplicationBuilder();
        pipeline.UseWebSockets();
        pipeline.Run(static context => context.RequestServices.GetRequiredService<ChatScaleEndpoint>().HandleAsync(context));
        return endpoints.Map(pattern, pipeline.Build()).WithDisplayName($"ChatScale WebSocket {pattern}");
    }
}
