using System.Collections.Frozen;

namespace ChatScale.Dispatching;

/// <summary>
/// The job types a dispatcher can run, by CLR type (to enqueue) and by stable name (to run what was stored). Shared by
/// every dispatcher so that lookups and the error for an unregistered type are the same everywhere.
/// </summary>
public sealed class JobTypeRegistry
{
    private readonly FrozenDictionary<Type, JobTypeRegistration> _byType;
    private readonly FrozenDictionary<string, JobTypeRegistration> _byName;

    /// <summary>Creates the registry; a later registration of the same type or name wins, as it does for DI services.</summary>
    /// <param name="registrations">The registrations added with <c>AddJobHandler&lt;TJob, THandler&gt;()</c>.</param>
    public JobTypeRegistry(IEnumerable<JobTypeRegistration> registrations)
    {
        ArgumentNullException.ThrowIfNull(registrations);
        var byType = new Dictionary<Type, JobTypeRegistration>();
        var byName = new Dictionary<string, JobTypeRegistration>(StringComparer.Ordinal);
        foreach (var registration in registrations)
        {
            byType[registration.JobType] = registration;
            byName[registration.Name] = registration;
        }

        _byType = byType.ToFrozenDictionary();
        _byName = byName.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The registration for a job declared as <paramref name="declaredType"/> whose runtime type is <paramref name="runtimeType"/>.</summary>
    /// <param name="declaredType">The type argument the job was enqueued with.</param>
    /// <param name="runtimeType">The job object's runtime type.</param>
    /// <returns>The registration.</returns>
    /// <exception cref="InvalidOperationException">Neither type is registered; the message names the fix.</exception>
    public JobTypeRegistration Find(Type declaredType, Type runtimeType)
    {
        ArgumentNullException.ThrowIfNull(declaredType);
        ArgumentNullException.ThrowIfNull(runtimeType);
        if (_byType.TryGetValue(declaredType, out var registration) || _byType.TryGetValue(runtimeType, out registration))
        {
            return registration;
        }

        throw new InvalidOperationException(
            $"No job handler is registered for job type '{runtimeType.FullName}'. Register one with AddJobHandler<TJob, THandler>() "
            + $"on the ChatScale builder, for example AddJobHandler<{runtimeType.Name}, MyHandler>(), before enqueueing it.");
    }

    /// <summary>The registration stored under <paramref name="name"/>, if this node has one.</summary>
    /// <param name="name">The stable job type name.</param>
    /// <returns>The registration, or <see langword="null"/>.</returns>
    public JobTypeRegistration? Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out var registration) ? registration : null;
    }
}
