using ChatScale.AspNetCore;
using ChatScale.Groups;
using ChatScale.Samples.Chat.Delivery;

namespace ChatScale.Samples.Chat.Api;

/// <summary>
/// <c>/api/channels/{name}</c>: public channels that any signed-in user may join, built on ChatScale groups
/// (<see cref="IGroupManager"/>). Membership lives in the backplane (Redis, or memory on one node), so posting is one
/// publish to the group whatever the channel's size, with no member list loaded or sent; a member who reconnects, to
/// any node, keeps receiving. Channel posts are live only: they are not stored and have no history.
/// </summary>
public static class ChannelApi
{
    /// <summary>Maps the endpoints.</summary>
    /// <param name="app">The app.</param>
    public static void MapChannelApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var channel = app.MapGroup("/api/channels/{name}").RequireAuthorization();
        channel.MapGet("/", GetAsync);
        channel.MapPut("/members/me", (string name, HttpContext http, IUserIdResolver users, IGroupManager groups, CancellationToken cancellationToken)
            => ChangeAsync(name, http, users, (group, me) => groups.AddToGroupAsync(group, me, cancellationToken)));
        channel.MapDelete("/members/me", (string name, HttpContext http, IUserIdResolver users, IGroupManager groups, CancellationToken cancellationToken)
            => ChangeAsync(name, http, users, (group, me) => groups.RemoveFromGroupAsync(group, me, cancellationToken)));
        channel.MapPost("/messages", PostAsync).RequireRateLimiting(ChatLimits.SendPolicy).WithBodyLimit(app);
    }

    /// <summary>The ChatScale group of a channel.</summary>
    /// <param name="name">The channel's name.</param>
    /// <returns>The group id.</returns>
    public static string GroupId(string name) => "channel:" + name;

    private static async Task<IResult> GetAsync(string name, HttpContext http, IUserIdResolver users, IGroupManager groups, CancellationToken cancellationToken)
    {
        if (Invalid(name) is { } invalid)
        {
            return invalid;
        }

        var group = GroupId(name);
        return await Or503Async(http, async () => Results.Ok(new ChannelInfo(
            name,
            await groups.CountMembersAsync(group, cancellationToken),
            await groups.CountOnlineMembersAsync(group, cancellationToken), // grows with the channel: fine per page view, never per message
            (await groups.GetGroupsAsync(users.GetUserId(http)!, cancellationToken)).Contains(group, StringComparer.Ordinal))));
    }

    private static async Task<IResult> ChangeAsync(string name, HttpContext http, IUserIdResolver users, Func<string, string, ValueTask<bool>> change)
    {
        if (Invalid(name) is { } invalid)
        {
            return invalid;
        }

        // Takes effect before this returns, for the user's sockets already open on any node.
        return await Or503Async(http, async () =>
        {
            await change(GroupId(name), users.GetUserId(http)!);
            return Results.NoContent();
        });
    }

    private static async Task<IResult> PostAsync(string name, SendMessageRequest? request, HttpContext http, IUserIdResolver users, IGroupManager groups, TimeProvider time, CancellationToken cancellationToken)
    {
        if (Invalid(name) is { } invalid)
        {
            return invalid;
        }

        var errors = Validation.Message(request, time.GetUtcNow());
        if (errors.Count > 0)
        {
            return Results.ValidationProblem(errors);
        }

        var me = users.GetUserId(http)!;
        var group = GroupId(name);
        return await Or503Async(http, async () =>
        {
            if (!(await groups.GetGroupsAsync(me, cancellationToken)).Contains(group, StringComparer.Ordinal))
            {
                return Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Not a member", detail: "Join the channel (PUT /api/channels/{name}/members/me) to post in it.");
            }

            var post = new ChannelPost(name, me, request!.Text!, time.GetUtcNow());

            // One serialization, one publish: every online member's sockets, on every node, get these bytes.
            await groups.PublishToGroupAsync(group, ChatEvents.ChannelFrame(post), cancellationToken: cancellationToken);
            return Results.Accepted(value: post);
        });
    }

    private static IResult? Invalid(string name)
        => Validation.IsUserName(name)
            ? null
            : Results.ValidationProblem(new Dictionary<string, string[]>(StringComparer.Ordinal) { ["name"] = ["Must be 1 to 32 letters, digits, '-', '_' or '.'."] });

    // Membership lives in Redis: while it is unreachable, say so in a way a client can act on.
    private static async Task<IResult> Or503Async(HttpContext http, Func<Task<IResult>> action)
    {
        try
        {
            return await action();
        }
        catch (BackplaneUnavailableException)
        {
            http.Response.Headers.RetryAfter = "2";
            return Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Channels are temporarily unavailable", detail: "Try again shortly.");
        }
    }
}
