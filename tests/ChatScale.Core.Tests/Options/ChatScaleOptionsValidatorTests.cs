namespace ChatScale.Core.Tests.Options;

public sealed class ChatScaleOptionsValidatorTests
{
    public static TheoryData<string, Action<ChatScaleOptions>> InvalidOptions => new()
    {
        { "ChatScale:NodeId", o => o.NodeId = "" },
        { "ChatScale:NodeId", o => o.NodeId = "   " },
        { "ChatScale:NodeId", o => o.NodeId = "node 1" },
        { "ChatScale:NodeId", o => o.NodeId = "node\u00011" },
        { "ChatScale:NodeId", o => o.NodeId = new string('n', 129) },
        { "ChatScale:SendQueueCapacity", o => o.SendQueueCapacity = 0 },
        { "ChatScale:SlowConsumerPolicy", o => o.SlowConsumerPolicy = (SlowConsumerPolicy)42 },
        { "ChatScale:MaxIncomingFrameBytes", o => o.MaxIncomingFrameBytes = -1 },
        { "ChatScale:MaxPayloadBytes", o => o.MaxPayloadBytes = 0 },
        { "ChatScale:MaxPayloadBytes", o => o.MaxPayloadBytes = (64 * 1024 * 1024) + 1 },
        { "ChatScale:HeartbeatInterval", o => o.HeartbeatInterval = TimeSpan.Zero },
        { "ChatScale:PresenceTimeout", o => o.PresenceTimeout = o.HeartbeatInterval },
        { "ChatScale:ShutdownDrainTimeout", o => o.ShutdownDrainTimeout = TimeSpan.FromSeconds(-1) },
        { "ChatScale:Dispatcher", o => o.Dispatcher = null! },
        { "ChatScale:Dispatcher:WorkerCount", o => o.Dispatcher.WorkerCount = 0 },
        { "ChatScale:Dispatcher:Partitions", o => o.Dispatcher.Partitions = 0 },
        { "ChatScale:Dispatcher:QueueCapacity", o => o.Dispatcher.QueueCapacity = -5 },
        { "ChatScale:Dispatcher:MaxAttempts", o => o.Dispatcher.MaxAttempts = 0 },
        { "ChatScale:Dispatcher:InitialBackoff", o => o.Dispatcher.InitialBackoff = TimeSpan.FromMilliseconds(-1) },
        { "ChatScale:Dispatcher:MaxBackoff", o => o.Dispatcher.MaxBackoff = o.Dispatcher.InitialBackoff - TimeSpan.FromTicks(1) },
    };

    [Fact]
    public void Validate_Defaults_Succeeds()
    {
        var result = new ChatScaleOptionsValidator().Validate(null, new ChatScaleOptions());

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Validate_OneInvalidOption_FailsNamingItsConfigurationPath(string path, Action<ChatScaleOptions> breakIt)
    {
        var options = new ChatScaleOptions();
        breakIt(options);

        var result = new ChatScaleOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        var failure = Assert.Single(result.Failures!);
        Assert.StartsWith(path + " ", failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_SeveralInvalidOptions_ReportsEachOne()
    {
        var options = new ChatScaleOptions { SendQueueCapacity = 0, MaxPayloadBytes = 0 };
        options.Dispatcher.MaxAttempts = 0;

        var result = new ChatScaleOptionsValidator().Validate(null, options);

        Assert.Equal(3, result.Failures!.Count());
        Assert.Contains(result.Failures!, f => f.StartsWith("ChatScale:SendQueueCapacity ", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.StartsWith("ChatScale:MaxPayloadBytes ", StringComparison.Ordinal));
        Assert.Contains(result.Failures!, f => f.StartsWith("ChatScale:Dispatcher:MaxAttempts ", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ZeroBackoffs_Succeeds()
    {
        var options = new ChatScaleOptions();
        options.Dispatcher.InitialBackoff = TimeSpan.Zero;
        options.Dispatcher.MaxBackoff = TimeSpan.Zero;

        Assert.True(new ChatScaleOptionsValidator().Validate(null, options).Succeeded);
    }
}
