using MongoDB.Bson;

namespace ChatScale.Samples.Chat.Store;

/// <summary>
/// Ids of conversations and messages: MongoDB ObjectIds written as 24 lowercase hex digits, in both stores. MongoDB
/// enforces <c>_id</c> uniqueness, so an insert under a known id is an idempotent append; ObjectIds also sort roughly
/// by creation time, which history paging relies on.
/// </summary>
public static class StoreIds
{
    /// <summary>A new id.</summary>
    public static string NewId() => ObjectId.GenerateNewId().ToString();

    /// <summary>Whether <paramref name="value"/> is a well-formed id.</summary>
    public static bool IsValid(string? value) => value is { Length: 24 } && ObjectId.TryParse(value, out _);

    /// <summary>Truncates to milliseconds, the precision both stores keep.</summary>
    public static DateTimeOffset Truncate(DateTimeOffset value)
        => new(value.Ticks - (value.Ticks % TimeSpan.TicksPerMillisecond), value.Offset);
}
