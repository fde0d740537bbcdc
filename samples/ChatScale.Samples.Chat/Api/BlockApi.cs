using ChatScale.AspNetCore;
using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Api;

/// <summary>
/// <c>/api/blocks</c>: <c>PUT /api/blocks/{user}</c> blocks a user (they can no longer create a conversation that
/// includes you, see <see cref="InvitationRule"/>), <c>DELETE</c> lifts it, <c>GET /api/blocks</c> lists yours.
/// </summary>
public static class BlockApi
{
    /// <summary>Maps the endpoints.</summary>
    /// <param name="app">The app.</param>
    public static void MapBlockApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var blocks = app.MapGroup("/api/blocks").RequireAuthorization();
        blocks.MapGet("/", async (HttpContext http, IUserIdResolver users, IBlockList list, CancellationToken cancellationToken)
            => Results.Ok(await list.ListBlockedAsync(users.GetUserId(http)!, cancellationToken)));
        blocks.MapPut("/{user}", (string user, HttpContext http, IUserIdResolver users, IBlockList list, CancellationToken cancellationToken)
            => ChangeAsync(user, http, users, (me, ct) => list.BlockAsync(me, user, ct), cancellationToken));
        blocks.MapDelete("/{user}", (string user, HttpContext http, IUserIdResolver users, IBlockList list, CancellationToken cancellationToken)
            => ChangeAsync(user, http, users, (me, ct) => list.UnblockAsync(me, user, ct), cancellationToken));
    }

    private static async Task<IResult> ChangeAsync(string user, HttpContext http, IUserIdResolver users, Func<string, CancellationToken, Task> change, CancellationToken cancellationToken)
    {
        var me = users.GetUserId(http)!;
        if (!Validation.IsUserName(user) || user == me)
        {
            return Results.ValidationProblem(new Dictionary<string, string[]>(StringComparer.Ordinal)
            {
                ["user"] = [user == me ? "You cannot block yourself." : "Must be 1 to 32 letters, digits, '-', '_' or '.'."],
            });
        }

        await change(me, cancellationToken);
        return Results.NoContent();
    }
}
