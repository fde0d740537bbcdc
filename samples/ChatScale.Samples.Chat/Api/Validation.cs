using System.Globalization;
using ChatScale.Samples.Chat.Store;
using MongoDB.Bson;

namespace ChatScale.Samples.Chat.Api;

/// <summary>The API's input rules; failures become RFC 7807 validation problem details.</summary>
internal static class Validation
{
    public const int MaxTextLength = 4000;
    public const int MaxTitleLength = 100;
    public const int MaxParticipants = 50;
    public const int DefaultPageSize = 50;
    public const int MaxPageSize = 200;
    private const int MaxUserLength = 32;

    /// <summary>1 to 32 of ASCII letters, digits, '-', '_' and '.'.</summary>
    public static bool IsUserName(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > MaxUserLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    public static Dictionary<string, string[]> Token(TokenRequest? request)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (!IsUserName(request?.User))
        {
            errors["user"] = ["Must be 1 to 32 letters, digits, '-', '_' or '.'."];
        }

        return errors;
    }

    public static Dictionary<string, string[]> Conversation(CreateConversationRequest? request, string me)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (request?.Title is { Length: > MaxTitleLength })
        {
            errors["title"] = [$"At most {MaxTitleLength} characters."];
        }

        var participants = request?.Participants;
        if (participants is null || participants.Count == 0)
        {
            errors["participants"] = ["Name at least one other participant."];
        }
        else if (participants.Count > MaxParticipants)
        {
            errors["participants"] = [$"At most {MaxParticipants} participants."];
        }
        else if (participants.Any(p => !IsUserName(p)))
        {
            errors["participants"] = ["Each participant must be 1 to 32 letters, digits, '-', '_' or '.'."];
        }
        else if (participants.All(p => string.Equals(p, me, StringComparison.Ordinal)))
        {
            errors["participants"] = ["Name at least one other participant: a conversation with only yourself is not allowed."];
        }

        return errors;
    }

    /// <summary>How far a client-chosen message id's timestamp may be from the server's clock.</summary>
    public static readonly TimeSpan MaxClientIdSkew = TimeSpan.FromMinutes(5);

    public static Dictionary<string, string[]> Message(SendMessageRequest? request, DateTimeOffset now)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(request?.Text))
        {
            errors["text"] = ["Must not be empty."];
        }
        else if (request.Text.Length > MaxTextLength)
        {
            errors["text"] = [$"At most {MaxTextLength} characters."];
        }

        if (request?.Id is not null && !StoreIds.IsValid(request.Id))
        {
            errors["id"] = ["Must be 24 hexadecimal digits (an ObjectId)."];
        }
        else if (request?.Id is not null && (ObjectId.Parse(request.Id).CreationTime - now.UtcDateTime).Duration() > MaxClientIdSkew)
        {
            // History is ordered by seq, not id, so this is no longer about catching up; it keeps every id's
            // timestamp a truthful creation time (ObjectIds are read as such) and the _id index append-mostly.
            errors["id"] = [$"Its timestamp must be within {MaxClientIdSkew.TotalMinutes} minutes of the server's clock; generate it just before sending."];
        }

        return errors;
    }

    /// <summary>
    /// History cursors are sequence numbers (<see cref="ChatMessage.Seq"/>, an integer ≥ 0), not message ids: ids
    /// can sort against the order messages were saved, so "after this id" can skip one.
    /// </summary>
    public static Dictionary<string, string[]> Page(string? after, string? before, int? limit, out long? afterSeq, out long? beforeSeq)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        afterSeq = Cursor("after", after, errors);
        beforeSeq = Cursor("before", before, errors);
        if (limit is < 1 or > MaxPageSize)
        {
            errors["limit"] = [$"Must be between 1 and {MaxPageSize}."];
        }

        return errors;
    }

    private static long? Cursor(string name, string? value, Dictionary<string, string[]> errors)
    {
        if (value is null)
        {
            return null;
        }

        if (long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
        {
            return seq;
        }

        errors[name] = StoreIds.IsValid(value)
            ? ["Must be a message's seq (an integer ≥ 0), not its id: history is paged by sequence number."]
            : ["Must be a message's seq (an integer ≥ 0)."];
        return null;
    }
}
