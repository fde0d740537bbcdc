using ChatScale.Reliability.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace ChatScale.Reliability.Tests.BadInput;

/// <summary>
/// Invalid options stop a real host at startup, naming the option by its configuration path. The validators'
/// rules one by one are covered by the unit tests of each package; this checks that each options class is validated
/// on start of a real host.
/// </summary>
public sealed class OptionsValidationTests
{
    [Fact]
    public async Task Invalid_ChatScaleOptions_fail_at_startup_naming_the_option()
    {
        var app = ChatHost.Build(chatScale: o => o.SendQueueCapacity = 0);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("ChatScale:SendQueueCapacity", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }

    [Fact]
    public async Task Invalid_ChatScaleEndpointOptions_fail_at_startup_naming_the_option()
    {
        var app = ChatHost.Build(endpoint: o => o.MessagesPerSecond = -1);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("ChatScale:Endpoint:MessagesPerSecond", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }

    [Fact]
    public async Task Invalid_ChatScaleRedisOptions_fail_at_startup_naming_the_option()
    {
        // The Redis port is never reached: validation runs before any hosted service starts.
        var app = ChatHost.Build(redis: "127.0.0.1:1", keyPrefix: "bad:prefix");
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("ChatScale:Redis:KeyPrefix", error.Message, StringComparison.Ordinal);
        await app.DisposeAsync();
    }
}
