using Microsoft.Extensions.Options;

namespace ChatScale.Redis.Internal;

/// <summary>
/// Validates <see cref="ChatScaleRedisOptions"/> at startup; each failure names the option by its configuration path
/// (for example <c>ChatScale:Redis:KeyPrefix</c>).
/// </summary>
internal sealed class ChatScaleRedisOptionsValidator(bool requiresConnectionString) : IValidateOptions<ChatScaleRedisOptions>
{
    public const int MaxKeyPrefixLength = 64;

    public ValidateOptionsResult Validate(string? name, ChatScaleRedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        const string P = ChatScaleRedisOptions.SectionName + ":";
        var failures = new List<string>();

        if (requiresConnectionString && string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            failures.Add($"{P}{nameof(options.ConnectionString)} must be set (for example \"localhost:6379\"), or an IConnectionMultiplexer registered before AddRedis().");
        }

        if (string.IsNullOrEmpty(options.KeyPrefix))
        {
            failures.Add($"{P}{nameof(options.KeyPrefix)} must not be empty.");
        }
        else if (options.KeyPrefix.Length > MaxKeyPrefixLength || !IsPrefixText(options.KeyPrefix))
        {
            failures.Add($"{P}{nameof(options.KeyPrefix)} must be at most {MaxKeyPrefixLength} characters of letters, digits, '-', '_' or '.' (was '{options.KeyPrefix}').");
        }

        if (!Enum.IsDefined(options.RoutingMode))
        {
            failures.Add($"{P}{nameof(options.RoutingMode)} must be Targeted or Broadcast (was {(int)options.RoutingMode}).");
        }

        if (options.SweepInterval <= TimeSpan.Zero)
        {
            failures.Add($"{P}{nameof(options.SweepInterval)} must be greater than zero (was {options.SweepInterval}).");
        }

        ValidateDispatcher(options.Dispatcher, failures);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void ValidateDispatcher(RedisDispatcherOptions? dispatcher, List<string> failures)
    {
        const string D = ChatScaleRedisOptions.SectionName + ":" + nameof(ChatScaleRedisOptions.Dispatcher) + ":";
        if (dispatcher is null)
        {
            failures.Add($"{ChatScaleRedisOptions.SectionName}:{nameof(ChatScaleRedisOptions.Dispatcher)} must not be null.");
            return;
        }

        if (dispatcher.LeaseTtl < TimeSpan.FromMilliseconds(300))
        {
            failures.Add($"{D}{nameof(dispatcher.LeaseTtl)} must be at least 300 ms (was {dispatcher.LeaseTtl}).");
        }

        if (dispatcher.PollInterval <= TimeSpan.Zero)
        {
            failures.Add($"{D}{nameof(dispatcher.PollInterval)} must be greater than zero (was {dispatcher.PollInterval}).");
        }

        if (dispatcher.ReadBatchSize <= 0)
        {
            failures.Add($"{D}{nameof(dispatcher.ReadBatchSize)} must be greater than 0 (was {dispatcher.ReadBatchSize}).");
        }

        if (dispatcher.MaxStreamLength is <= 0)
        {
            failures.Add($"{D}{nameof(dispatcher.MaxStreamLength)} must be null or greater than 0 (was {dispatcher.MaxStreamLength}).");
        }

        if (dispatcher.EnqueueRetryTimeout < TimeSpan.Zero)
        {
            failures.Add($"{D}{nameof(dispatcher.EnqueueRetryTimeout)} must not be negative (was {dispatcher.EnqueueRetryTimeout}).");
        }
    }

    // ':' would let one prefix's names run into another's ("a" + ":b:..." vs "a:b" + ":..."), and braces would move
    // the presence keys' cluster hash tag.
    private static bool IsPrefixText(string prefix)
    {
        foreach (var c in prefix)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }
}
