using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;

namespace ChatScale.Dispatching;

/// <summary>
/// Describes one job type a dispatcher can run: its stable name, how to serialize it (for durable dispatchers) and
/// how to invoke its <see cref="IJobHandler{TJob}"/>. Created by <c>AddJobHandler</c>; dispatcher implementations
/// receive every registration from DI.
/// </summary>
public sealed class JobTypeRegistration
{
    private readonly Func<object, byte[]> _serialize;
    private readonly Func<ReadOnlyMemory<byte>, object> _deserialize;
    private readonly Func<IServiceProvider, object, JobContext, CancellationToken, ValueTask> _invoke;

    private JobTypeRegistration(
        string name,
        Type jobType,
        Func<object, byte[]> serialize,
        Func<ReadOnlyMemory<byte>, object> deserialize,
        Func<IServiceProvider, object, JobContext, CancellationToken, ValueTask> invoke)
    {
        Name = name;
        JobType = jobType;
        _serialize = serialize;
        _deserialize = deserialize;
        _invoke = invoke;
    }

    /// <summary>The stable name stored with each job (defaults to the type's full name).</summary>
    public string Name { get; }

    /// <summary>The CLR type of the job.</summary>
    public Type JobType { get; }

    /// <summary>Creates the registration for <typeparamref name="TJob"/>.</summary>
    /// <typeparam name="TJob">The job type.</typeparam>
    /// <param name="name">A stable name; defaults to the type's full name. Keep it when renaming the type so queued jobs still run.</param>
    /// <param name="typeInfo">Source-generated JSON metadata; when <see langword="null"/>, reflection-based defaults (web) are used.</param>
    /// <returns>The registration.</returns>
    public static JobTypeRegistration Create<TJob>(string? name = null, JsonTypeInfo<TJob>? typeInfo = null)
        where TJob : notnull
    {
        var info = typeInfo ?? (JsonTypeInfo<TJob>)JsonSerializerOptions.Web.GetTypeInfo(typeof(TJob));
        return new JobTypeRegistration(
            string.IsNullOrWhiteSpace(name) ? typeof(TJob).FullName ?? typeof(TJob).Name : name,
            typeof(TJob),
            job => JsonSerializer.SerializeToUtf8Bytes((TJob)job, info),
            bytes => JsonSerializer.Deserialize(bytes.Span, info)
                ?? throw new JsonException($"Job payload of type '{typeof(TJob)}' deserialized to null."),
            static (services, job, context, ct) =>
                services.GetRequiredService<IJobHandler<TJob>>().HandleAsync((TJob)job, context, ct));
    }

    /// <summary>Serializes a job of this type to UTF-8 JSON.</summary>
    /// <param name="job">The job; must be of <see cref="JobType"/>.</param>
    /// <returns>The JSON bytes.</returns>
    public byte[] Serialize(object job) => _serialize(job);

    /// <summary>Deserializes a job of this type from UTF-8 JSON.</summary>
    /// <param name="json">The bytes written by <see cref="Serialize"/>.</param>
    /// <returns>The job.</returns>
    /// <exception cref="JsonException">The bytes are not a valid job of this type.</exception>
    public object Deserialize(ReadOnlyMemory<byte> json) => _deserialize(json);

    /// <summary>Resolves the job's handler from <paramref name="services"/> (a per-attempt scope) and runs it.</summary>
    /// <param name="services">The scope's service provider.</param>
    /// <param name="job">The job.</param>
    /// <param name="context">The attempt's context.</param>
    /// <param name="cancellationToken">Signalled on shutdown.</param>
    /// <returns>The handler's task.</returns>
    public ValueTask InvokeAsync(IServiceProvider services, object job, JobContext context, CancellationToken cancellationToken)
        => _invoke(services, job, context, cancellationToken);
}
