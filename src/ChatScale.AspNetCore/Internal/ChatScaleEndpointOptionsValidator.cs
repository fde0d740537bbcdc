using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>Validates <see cref="ChatScaleEndpointOptions"/> at startup, naming each bad option by its configuration path.</summary>
internal sealed class ChatScaleEndpointOptionsValidator : IValidateOptions<ChatScaleEndpointOptions>
{
    public ValidateOptionsResult Validate(string? name, ChatScaleEndpointOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        const string P = ChatScaleEndpointOptions.SectionName + ":";
        var failures = new List<string>();
        foreach (var origin in options.AllowedOrigins)
        {
            if (!OriginPolicy.IsValidEntry(origin))
            {
                failures.Add($"{P}{nameof(options.AllowedOrigins)} entries must be '*' or an origin such as 'https://chat.example.com' (scheme, host and optional port, no path); '{origin}' is not.");
            }
        }

        if (!double.IsFinite(options.MessagesPerSecond) || options.MessagesPerSecond < 0)
        {
            failures.Add($"{P}{nameof(options.MessagesPerSecond)} must be 0 (no limit) or greater (was {options.MessagesPerSecond}).");
        }
        else if (options.MessagesPerSecond > 0 && options.MessageBurst < 1)
        {
            failures.Add($"{P}{nameof(options.MessageBurst)} must be at least 1 when {P}{nameof(options.MessagesPerSecond)} is set (was {options.MessageBurst}).");
        }

        if (options.KeepAliveInterval < TimeSpan.Zero)
        {
            failures.Add($"{P}{nameof(options.KeepAliveInterval)} must not be negative (was {options.KeepAliveInterval}); use 0 to disable pings.");
        }

        if (options.KeepAliveTimeout < TimeSpan.Zero)
        {
            failures.Add($"{P}{nameof(options.KeepAliveTimeout)} must not be negative (was {options.KeepAliveTimeout}); use 0 to disable the check.");
        }

        if (options.MaxConnectionsPerUser < 0)
        {
            failures.Add($"{P}{nameof(options.MaxConnectionsPerUser)} must be 0 (no cap) or greater (was {options.MaxConnectionsPerUser}).");
        }

        if (options.MaxConnections is < 1)
        {
            failures.Add($"{P}{nameof(options.MaxConnections)} must be at least 1, or unset to derive it from the open-file limit (was {options.MaxConnections}).");
        }

        if (options.MaxConcurrentUpgrades < 0)
        {
            failures.Add($"{P}{nameof(options.MaxConcurrentUpgrades)} must be 0 (no limit) or greater (was {options.MaxConcurrentUpgrades}).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
