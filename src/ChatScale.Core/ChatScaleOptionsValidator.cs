using Microsoft.Extensions.Options;

namespace ChatScale;

/// <summary>
/// Validates <see cref="ChatScaleOptions"/> at startup. Each failure names the option by its configuration path
/// (for example <c>ChatScale:SendQueueCapacity</c>) so a misconfigured host fails fast with a fixable message.
/// </summary>
public sealed class ChatScaleOptionsValidator : IValidateOptions<ChatScaleOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, ChatScaleOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        const string P = ChatScaleOptions.SectionName + ":";
        var failures = new List<string>();

        if (string.IsNullOrWhiteSpace(options.NodeId))
        {
            failures.Add($"{P}{nameof(options.NodeId)} must not be empty.");
        }
        else if (options.NodeId.Length > 128 || options.NodeId.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
        {
            failures.Add($"{P}{nameof(options.NodeId)} must be at most 128 characters with no whitespace or control characters (was '{options.NodeId}').");
        }

        Positive(options.SendQueueCapacity, nameof(options.SendQueueCapacity));
        if (!Enum.IsDefined(options.SlowConsumerPolicy))
        {
            failures.Add($"{P}{nameof(options.SlowConsumerPolicy)} must be DropOldest or Close (was {(int)options.SlowConsumerPolicy}).");
        }

        PositiveTime(options.SlowConsumerCloseTimeout, nameof(options.SlowConsumerCloseTimeout));
        Positive(options.MaxIncomingFrameBytes, nameof(options.MaxIncomingFrameBytes));
        Positive(options.MaxPayloadBytes, nameof(options.MaxPayloadBytes));
        if (options.MaxPayloadBytes > EnvelopeLimits.MaxPayloadBytes)
        {
            failures.Add($"{P}{nameof(options.MaxPayloadBytes)} must be at most {EnvelopeLimits.MaxPayloadBytes} (was {options.MaxPayloadBytes}).");
        }

        PositiveTime(options.HeartbeatInterval, nameof(options.HeartbeatInterval));
        PositiveTime(options.PresenceTimeout, nameof(options.PresenceTimeout));
        if (options.PresenceTimeout <= options.HeartbeatInterval)
        {
            failures.Add($"{P}{nameof(options.PresenceTimeout)} ({options.PresenceTimeout}) must be longer than {P}{nameof(options.HeartbeatInterval)} ({options.HeartbeatInterval}), or live nodes would flap offline.");
        }

        if (options.ShutdownDrainTimeout < TimeSpan.Zero)
        {
            failures.Add($"{P}{nameof(options.ShutdownDrainTimeout)} must not be negative (was {options.ShutdownDrainTimeout}).");
        }

        var d = options.Dispatcher;
        if (d is null)
        {
            failures.Add($"{P}{nameof(options.Dispatcher)} must not be null.");
        }
        else
        {
            const string D = P + nameof(ChatScaleOptions.Dispatcher) + ":";
            Positive(d.WorkerCount, D + nameof(d.WorkerCount));
            Positive(d.Partitions, D + nameof(d.Partitions));
            Positive(d.QueueCapacity, D + nameof(d.QueueCapacity));
            Positive(d.MaxAttempts, D + nameof(d.MaxAttempts));
            if (d.InitialBackoff < TimeSpan.Zero)
            {
                failures.Add($"{D}{nameof(d.InitialBackoff)} must not be negative (was {d.InitialBackoff}).");
            }

            if (d.MaxBackoff < d.InitialBackoff)
            {
                failures.Add($"{D}{nameof(d.MaxBackoff)} ({d.MaxBackoff}) must not be shorter than {D}{nameof(d.InitialBackoff)} ({d.InitialBackoff}).");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);

        void Positive(int value, string option)
        {
            if (value <= 0)
            {
                failures.Add($"{(option.Contains(':', StringComparison.Ordinal) ? option : P + option)} must be greater than 0 (was {value}).");
            }
        }

        void PositiveTime(TimeSpan value, string option)
        {
            if (value <= TimeSpan.Zero)
            {
                failures.Add($"{P}{option} must be greater than zero (was {value}).");
            }
        }
    }
}
