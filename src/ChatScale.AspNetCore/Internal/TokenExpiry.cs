using System.Globalization;
using System.Security.Claims;
using ChatScale.Connections;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Ends a WebSocket when the authentication that opened it expires (<see cref="ChatScaleEndpointOptions.CloseOnTokenExpiry"/>):
/// one timer per connection whose ticket has an expiry, none otherwise, so the check costs nothing per message.
/// </summary>
internal static class TokenExpiry
{
    // Timers cannot be due further out than this (~49 days); a ticket valid longer is not watched.
    private static readonly TimeSpan LongestDue = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary>
    /// When the request's authentication expires: the ticket's <see cref="AuthenticationProperties.ExpiresUtc"/>
    /// (JWT bearer and cookies set it), else the user's <c>exp</c> claim (seconds since the Unix epoch); null when
    /// neither says, or when the option is off.
    /// </summary>
    public static DateTimeOffset? Find(HttpContext context, ChatScaleEndpointOptions options)
    {
        if (!options.CloseOnTokenExpiry)
        {
            return null;
        }

        if (context.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult?.Properties?.ExpiresUtc is { } expires)
        {
            return expires;
        }

        return context.User.FindFirst("exp") is { } exp
            && long.TryParse(exp.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            && seconds <= DateTimeOffset.MaxValue.ToUnixTimeSeconds()
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null;
    }

    /// <summary>Closes <paramref name="connection"/> with 1008 "Token expired." at <paramref name="expiresAt"/>; dispose to cancel.</summary>
    public static IDisposable? CloseWhenExpired(ClientConnection connection, DateTimeOffset? expiresAt, TimeProvider time, ILogger logger)
        => expiresAt is { } at && at - time.GetUtcNow() <= LongestDue ? new Watch(connection, at, time, logger) : null;

    private sealed class Watch : IDisposable
    {
        private readonly ClientConnection _connection;
        private readonly DateTimeOffset _at;
        private readonly TimeProvider _time;
        private readonly ILogger _logger;
        private readonly ITimer _timer;

        public Watch(ClientConnection connection, DateTimeOffset at, TimeProvider time, ILogger logger)
        {
            _connection = connection;
            _at = at;
            _time = time;
            _logger = logger;
            _timer = time.CreateTimer(static state => ((Watch)state!).OnDue(), this, Remaining(), Timeout.InfiniteTimeSpan);
        }

        public void Dispose() => _timer.Dispose();

        private TimeSpan Remaining()
        {
            var left = _at - _time.GetUtcNow();
            return left < TimeSpan.Zero ? TimeSpan.Zero : left;
        }

        private void OnDue()
        {
            // Timers run on the monotonic clock and the expiry is wall-clock time: if the wall clock was stepped back
            // meanwhile, wait for the rest instead of closing early.
            var left = Remaining();
            if (left > TimeSpan.Zero)
            {
                _timer.Change(left, Timeout.InfiniteTimeSpan);
                return;
            }

            AspNetCoreLog.TokenExpired(_logger, _connection.ConnectionId, _connection.UserId, _at);
            _ = _connection.CloseAsync(ConnectionCloseStatus.PolicyViolation, "Token expired.", TimeSpan.Zero)
                .ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }
}
