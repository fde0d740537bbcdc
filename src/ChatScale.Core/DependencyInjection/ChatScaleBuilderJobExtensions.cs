using System.Text.Json.Serialization.Metadata;
using ChatScale;
using ChatScale.Dispatching;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers background job handlers on an <see cref="IChatScaleBuilder"/>.</summary>
public static class ChatScaleBuilderJobExtensions
{
    /// <summary>
    /// Registers <typeparamref name="THandler"/> (scoped: a new instance per attempt) as the handler of
    /// <typeparamref name="TJob"/> jobs enqueued on <see cref="IBackgroundDispatcher"/>. Calling it again for the
    /// same job type replaces the earlier handler and name.
    /// </summary>
    /// <typeparam name="TJob">The job type.</typeparam>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="builder">The ChatScale builder.</param>
    /// <param name="name">The stable job type name stored with durable jobs; defaults to the type's full name.</param>
    /// <param name="typeInfo">Source-generated JSON metadata for trimming/AOT-friendly serialization.</param>
    /// <returns>The builder.</returns>
    /// <example>
    /// <code>
    /// builder.Services.AddChatScale().AddJobHandler&lt;BroadcastMessage, BroadcastMessageHandler&gt;();
    /// </code>
    /// </example>
    public static IChatScaleBuilder AddJobHandler<TJob, THandler>(this IChatScaleBuilder builder, string? name = null, JsonTypeInfo<TJob>? typeInfo = null)
        where TJob : notnull
        where THandler : class, IJobHandler<TJob>
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;

        // One registration per job type: calling this again for TJob replaces the handler and the registration
        // (the last call wins, as it does for other DI services) rather than adding a second one.
        services.Replace(ServiceDescriptor.Scoped<IJobHandler<TJob>, THandler>());
        for (var i = services.Count - 1; i >= 0; i--)
        {
            if (services[i].ImplementationInstance is JobTypeRegistration existing && existing.JobType == typeof(TJob))
            {
                services.RemoveAt(i);
            }
        }

        services.AddSingleton(JobTypeRegistration.Create(name, typeInfo));
        return builder;
    }
}
