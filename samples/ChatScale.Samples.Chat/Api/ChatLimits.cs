using System.Globalization;
using System.Threading.RateLimiting;
using ChatScale.AspNetCore;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace ChatScale.Samples.Chat.Api;

/// <summary>
/// What one user may ask of the API (see <see cref="ChatLimitsOptions"/>): per-user rate limits on sending and on
/// creating conversations (429 + Retry-After, before the body is read), a small body cap on every POST (413 before the
/// body is read), and 400 problem details instead of an exception for a malformed body or query in every environment.
/// </summary>
public static class ChatLimits
{
    /// <summary>The rate-limiter policy of <c>POST /api/conversations/{id}/messages</c>.</summary>
    public const string SendPolicy = "send";

    /// <summary>The rate-limiter policy of <c>POST /api/conversations</c>.</summary>
    public const string CreatePolicy = "create-conversation";

    /// <summary>Adds the limits' options, the rate limiter and its policies, and problem-details 400s for bad input.</summary>
    /// <param name="services">The app's services.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddChatLimits(this IServiceCollection services)
    {
        services.AddOptions<ChatLimitsOptions>().BindConfiguration(ChatLimitsOptions.SectionName)
            .Validate(o => o.MessagesPerSecond > 0 && o.MessageBurst > 0 && o.ConversationsPerMinute > 0 && o.ConversationBurst > 0 && o.MaxBodyBytes > 0,
                $"{ChatLimitsOptions.SectionName}: every limit must be greater than 0.")
            .ValidateOnStart();

        // Binding failures (malformed JSON, "limit=abc") answer 400 with problem details (UseStatusCodePages writes
        // them) instead of throwing: in Development the exception page would show a stack trace to the client.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = false);

        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.OnRejected = OnRejectedAsync;
            o.AddPolicy(SendPolicy, http =>
            {
                var limits = http.RequestServices.GetRequiredService<IOptions<ChatLimitsOptions>>().Value;
                return RateLimitPartition.GetTokenBucketLimiter(PartitionKey(http), _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = limits.MessageBurst,
                    TokensPerPeriod = limits.MessagesPerSecond,
                    ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                    QueueLimit = 0,
                });
            });
            o.AddPolicy(CreatePolicy, http =>
            {
                var limits = http.RequestServices.GetRequiredService<IOptions<ChatLimitsOptions>>().Value;
                return RateLimitPartition.GetTokenBucketLimiter(PartitionKey(http), _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = limits.ConversationBurst,
                    TokensPerPeriod = 1,
                    ReplenishmentPeriod = TimeSpan.FromMinutes(1.0 / limits.ConversationsPerMinute),
                    QueueLimit = 0,
                });
            });
        });
        return services;
    }

    /// <summary>The body cap of the API's POST endpoints, applied by endpoint routing before the body is read.</summary>
    /// <param name="builder">An endpoint.</param>
    /// <param name="app">The app, for the configured cap.</param>
    /// <returns>The endpoint.</returns>
    public static RouteHandlerBuilder WithBodyLimit(this RouteHandlerBuilder builder, WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(app);
        return builder.WithMetadata(new BodySizeLimit(app.Services.GetRequiredService<IOptions<ChatLimitsOptions>>().Value.MaxBodyBytes));
    }

    // Per user; a request without one (only /api/dev/token is anonymous) counts under its address.
    private static string PartitionKey(HttpContext http)
        => http.RequestServices.GetRequiredService<IUserIdResolver>().GetUserId(http) is { Length: > 0 } user
            ? "u:" + user
            : "ip:" + http.Connection.RemoteIpAddress;

    private static async ValueTask OnRejectedAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var http = context.HttpContext;
        var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
        http.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
        await Results.Problem(
                statusCode: StatusCodes.Status429TooManyRequests,
                title: "Too many requests",
                detail: $"Slow down: retry after {retryAfter} s.")
            .ExecuteAsync(http);
    }

    private sealed class BodySizeLimit(long bytes) : IRequestSizeLimitMetadata
    {
        public long? MaxRequestBodySize { get; } = bytes;
    }
}
