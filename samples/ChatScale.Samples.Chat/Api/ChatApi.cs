using ChatScale.AspNetCore;
using ChatScale.Samples.Chat.Auth;
using ChatScale.Samples.Chat.Delivery;
using ChatScale.Samples.Chat.Store;
using MongoDB.Bson;

namespace ChatScale.Samples.Chat.Api;

/// <summary>The sample's HTTP API.</summary>
public static class ChatApi
{
    /// <summary>Maps <c>/api/...</c>; the dev endpoints only in Development.</summary>
    /// <param name="app">The app.</param>
    public static void MapChatApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var api = app.MapGroup("/api/conversations").RequireAuthorization();
        api.MapPost("/", CreateConversationAsync).RequireRateLimiting(ChatLimits.CreatePolicy).WithBodyLimit(app).AddEndpointFilter<InvitationRule>();
        api.MapGet("/", ListConversationsAsync);
        api.MapGet("/{id}", GetConversationAsync);
        api.MapPost("/{id}/messages", SendMessageAsync).RequireRateLimiting(ChatLimits.SendPolicy).WithBodyLimit(app);
        api.MapGet("/{id}/messages", GetMessagesAsync);
        api.MapGet("/{id}/presence", GetPresenceAsync);

        if (app.Environment.IsDevelopment())
        {
            var dev = app.MapGroup("/api/dev");
            dev.MapPost("/token", IssueToken).WithBodyLimit(app);
            dev.MapGet("/notifications", (HttpContext http, IUserIdResolver users, RecordingPushNotifier recorder)
                => Results.Ok(recorder.For(users.GetUserId(http)!))).RequireAuthorization();
        }
    }

    private static IResult IssueToken(TokenRequest? request, DevTokenIssuer issuer)
    {
        var errors = Validation.Token(request);
        return errors.Count > 0
            ? Results.ValidationProblem(errors)
            : Results.Ok(new { user = request!.User, token = issuer.Issue(request.User!) });
    }

    private static async Task<IResult> CreateConversationAsync(
        CreateConversationRequest? request, HttpContext http, IUserIdResolver users, IChatStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        var me = users.GetUserId(http)!;
        var errors = Validation.Conversation(request, me);
        if (errors.Count > 0)
        {
            return Results.ValidationProblem(errors);
        }

        List<string> participants = [me, .. request!.Participants!.Where(p => p != me).Distinct(StringComparer.Ordinal)];
        var conversation = new Conversation(StoreIds.NewId(), request.Title?.Trim() ?? string.Empty, participants, StoreIds.Truncate(time.GetUtcNow()));
        await store.CreateConversationAsync(conversation, cancellationToken);
        return Results.Created($"/api/conversations/{conversation.Id}", conversation);
    }

    private static async Task<IResult> ListConversationsAsync(string? before, int? limit, HttpContext http, IUserIdResolver users, IChatStore store, CancellationToken cancellationToken)
    {
        var errors = ConversationPaging.Validate(before, limit);
        return errors.Count > 0
            ? Results.ValidationProblem(errors)
            : Results.Ok(await ConversationPaging.ListAsync(store, users.GetUserId(http)!, before, limit, http, cancellationToken));
    }

    private static async Task<IResult> GetConversationAsync(string id, HttpContext http, IUserIdResolver users, IChatStore store, CancellationToken cancellationToken)
    {
        var (conversation, denied) = await AuthorizeAsync(id, http, users, store, cancellationToken);
        return denied ?? Results.Ok(conversation);
    }

    private static async Task<IResult> SendMessageAsync(
        string id, SendMessageRequest? request, HttpContext http, IUserIdResolver users, IChatStore store, IBackgroundDispatcher dispatcher, TimeProvider time, CancellationToken cancellationToken)
    {
        var (conversation, denied) = await AuthorizeAsync(id, http, users, store, cancellationToken);
        if (denied is not null)
        {
            return denied;
        }

        var errors = Validation.Message(request, time.GetUtcNow());
        if (errors.Count > 0)
        {
            return Results.ValidationProblem(errors);
        }

        var me = users.GetUserId(http)!;
        var messageId = request!.Id is null ? StoreIds.NewId() : ObjectId.Parse(request.Id).ToString();
        var message = new ChatMessage(messageId, conversation!.Id, me, request.Text!, StoreIds.Truncate(time.GetUtcNow()));
        var saved = await store.AppendMessageAsync(message, cancellationToken);
        if (!saved.Created && (saved.Message.Sender != me || saved.Message.ConversationId != conversation.Id))
        {
            return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Message id already used", detail: "Another message has this id; choose a new one.");
        }

        // Enqueued even when the message already existed: a retried send may follow a crash between save and enqueue,
        // and the handler is idempotent, so a second broadcast is harmless while a missing one is not.
        try
        {
            await dispatcher.EnqueueAsync(new BroadcastMessageJob(saved.Message), orderingKey: conversation.Id, cancellationToken);
        }
        catch (BackplaneUnavailableException)
        {
            // The durable dispatcher could not confirm the job (Redis unreachable, or its reply timed out: then
            // MayHaveSucceeded is true and the job may run anyway). The message is saved, so history has it; the client
            // retries the same request (same id), which finds the saved message and enqueues again; a second broadcast
            // of one message is harmless (clients key messages by id).
            http.Response.Headers.RetryAfter = "1";
            return Results.Problem(
                statusCode: StatusCodes.Status503ServiceUnavailable,
                title: "Delivery is temporarily unavailable",
                detail: $"Message {saved.Message.Id} is saved, but its delivery could not be queued. Retry the same request with the same id.",
                extensions: new Dictionary<string, object?> { ["messageId"] = saved.Message.Id });
        }

        return Results.Accepted($"/api/conversations/{conversation.Id}/messages?after={saved.Message.Seq - 1}&limit=1", saved.Message);
    }

    private static async Task<IResult> GetMessagesAsync(
        string id, string? after, string? before, int? limit, HttpContext http, IUserIdResolver users, IChatStore store, CancellationToken cancellationToken)
    {
        var (conversation, denied) = await AuthorizeAsync(id, http, users, store, cancellationToken);
        if (denied is not null)
        {
            return denied;
        }

        var errors = Validation.Page(after, before, limit, out var afterSeq, out var beforeSeq);
        if (errors.Count > 0)
        {
            return Results.ValidationProblem(errors);
        }

        var page = await store.GetMessagesAsync(conversation!.Id, afterSeq, beforeSeq, limit ?? Validation.DefaultPageSize, cancellationToken);
        return Results.Ok(new MessagePage(page));
    }

    private static async Task<IResult> GetPresenceAsync(
        string id, HttpContext http, IUserIdResolver users, IChatStore store, IConnectionRegistry presence, CancellationToken cancellationToken)
    {
        var (conversation, denied) = await AuthorizeAsync(id, http, users, store, cancellationToken);
        if (denied is not null)
        {
            return denied;
        }

        // One round-trip for all members, whichever nodes they are on.
        PresenceLookup lookup;
        try
        {
            lookup = await presence.LocateAsync(conversation!.Participants, cancellationToken);
        }
        catch (BackplaneUnavailableException)
        {
            // Presence lives in Redis: while it is unreachable, say so in a way a client can act on (try again later).
            http.Response.Headers.RetryAfter = "2";
            return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Presence is temporarily unavailable", detail: "Who is online cannot be looked up right now; try again shortly.");
        }

        var offline = lookup.OfflineUsers.ToHashSet(StringComparer.Ordinal);
        return Results.Ok(conversation.Participants.Select(p => new MemberPresence(p, !offline.Contains(p))).ToList());
    }

    /// <summary>404 for an unknown conversation, 403 for a non-participant, else the conversation.</summary>
    private static async Task<(Conversation? Conversation, IResult? Denied)> AuthorizeAsync(
        string id, HttpContext http, IUserIdResolver users, IChatStore store, CancellationToken cancellationToken)
    {
        var conversation = StoreIds.IsValid(id) ? await store.GetConversationAsync(ObjectId.Parse(id).ToString(), cancellationToken) : null;
        if (conversation is null)
        {
            return (null, Results.Problem(statusCode: StatusCodes.Status404NotFound, title: "Conversation not found"));
        }

        var me = users.GetUserId(http);
        if (me is null || !conversation.HasParticipant(me))
        {
            return (null, Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Not a participant", detail: "Only the conversation's participants may read or post in it."));
        }

        return (conversation, null);
    }
}
