namespace ChatScale.Core.Tests.Options;

public sealed class ChatScaleOptionsValidatorTests
{
    // Keyed by a readable name, so that each case is a separate, serializable test case.
    private static readonly Dictionary<string, (string Path, Action<ChatScaleOptions> Break)> Cases = new()
    {
        ["NodeId empty"] = ("ChatScale:NodeId", o => o.NodeId = ""),
        ["NodeId blank"] = ("ChatScale:NodeId", o => o.NodeId = "   "),
        ["NodeId with a space"] = ("ChatScale:NodeId", o => o.NodeId = "node 1"),
        ["NodeId with a control character"] = ("ChatScale:NodeId", o => o.NodeId = "node\u00011"),
        ["NodeId too long"] = ("ChatScale:NodeId", o => o.NodeId = new string('n', 129)),
        ["SendQueueCapacity"] = ("ChatScale:SendQueueCapacity", o => o.SendQueueCapacity = 0),
        ["SlowConsumerPolicy"] = ("ChatScale:SlowConsumerPolicy", o => o.SlowConsumerPolicy = (SlowConsumerPolicy)42),
        ["MaxIncomingFrameBytes"] = ("ChatScale:MaxIncomingFrameBytes", o => o.MaxIncomingFrameBytes = -1),
        ["MaxPayloadBytes zero"] = ("ChatScale:MaxPayloadBytes", o => o.MaxPayloadBytes = 0),
        ["MaxPayloadBytes above the wire format limit"] = ("ChatScale:MaxPayloadBytes", o => o.MaxPayloadBytes = (64 * 1024 * 1024) + 1),
        ["HeartbeatInterval"] = ("ChatScale:HeartbeatInterval", o => o.HeartbeatInterval = TimeSpan.Zero),
        ["PresenceTimeout not above HeartbeatInterval"] = ("ChatScale:PresenceTimeout", o => o.PresenceTimeout = o.HeartbeatInterval),
        ["ShutdownDrainTimeout"] = ("ChatScale:ShutdownDrainTimeout", o => o.ShutdownDrainTimeout = TimeSpan.FromSeconds(-1)),
        ["Dispatcher null"] = ("ChatScale:Dispatcher", o => o.Dispatcher = null!),
        ["Dispatcher:WorkerCount"] = ("ChatScale:Dispatcher:WorkerCount", o => o.Dispatcher.WorkerCount = 0),
        ["Dispatcher:Partitions"] = ("ChatScale:Dispatcher:Partitions", o => o.Dispatcher.Partitions = 0),
        ["Dispatcher:QueueCapacity"] = ("ChatScale:Dispatcher:QueueCapacity", o => o.Dispatcher.QueueCapacity = -5),
        ["Dispatcher:MaxAttempts"] = ("ChatScale:Dispatcher:MaxAttempts", o => o.Dispatcher.MaxAttempts = 0),
        ["Dispatcher:InitialBackoff"] = ("ChatScale:Dispatcher:InitialBackoff", o => o.Dispatcher.InitialBackoff = TimeSpan.FromMilliseconds(-1)),
        ["Dispatcher:MaxBackoff below InitialBackoff"] = ("ChatScale:Dispatcher:MaxBackoff", o => o.Dispatcher.MaxBackoff = o.Dispatcher.InitialBackoff - TimeSpan.FromTicks(1)),
    };

    public static TheoryData<string> InvalidCases => new(Cases.Keys);

    [Fact]
    public void Validate_Defaults_Succeeds()
    {
        var result = new ChatScaleOptionsValidator().Validate(null, new ChatScaleOptions());

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [MemberData(nameof(InvalidCases))]
    public void Validate_OneInvalidOption_FailsNamingItsConfigurationPath(string invalidCase)
    {
        var (path, breakIt) = Cases[invalidCase];
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
