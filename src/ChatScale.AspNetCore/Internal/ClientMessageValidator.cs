using System.Text.Json;
using System.Text.Unicode;

namespace ChatScale.AspNetCore.Internal;

/// <summary>What a client's text message must be: valid UTF-8 holding one complete JSON value.</summary>
internal static class ClientMessageValidator
{
    private static readonly JsonReaderOptions JsonOptions = new() { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 };

    public static bool IsUtf8Json(ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8))
        {
            return false;
        }

        var reader = new Utf8JsonReader(utf8, JsonOptions);
        try
        {
            while (reader.Read())
            {
            }

            return reader.TokenType != JsonTokenType.None;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
