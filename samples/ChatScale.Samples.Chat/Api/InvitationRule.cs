using ChatScale.AspNetCore;
using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Api;

/// <summary>
/// The sample's invitation rule: anyone may start a conversation with anyone, except with a user who blocked them
/// (<c>PUT /api/blocks/{user}</c>): that is refused with 403, before anything is stored, and without saying which
/// participant blocked the creator. Together with the per-user creation limit and paged lists, a spammer can neither
/// bury a user's real conversations nor keep reaching them once blocked. Conversations made before the block stay
/// (the sample has no "leave").
/// </summary>
internal sealed class InvitationRule(IBlockList blocks, IUserIdResolver users) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var request = context.Arguments.OfType<CreateConversationRequest>().FirstOrDefault();
        var me = users.GetUserId(context.HttpContext);
        if (request?.Participants is { Count: > 0 and <= Validation.MaxParticipants } invited && me is not null)
        {
            var others = invited.Where(p => p != me).Distinct(StringComparer.Ordinal).ToList();
            if ((await blocks.WhoBlocksAsync(others, me, context.HttpContext.RequestAborted)).Count > 0)
            {
                return Results.Problem(
                    statusCode: StatusCodes.Status403Forbidden,
                    title: "Not allowed to add these participants",
                    detail: "A participant does not accept conversations from you.");
            }
        }

        return await next(context);
    }
}
