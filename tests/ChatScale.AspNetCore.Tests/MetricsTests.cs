using System.Diagnostics.Metrics;
using ChatScale.AspNetCore.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ChatScale.AspNetCore.Tests;

public sealed class MetricsTests
{
    [Fact]
    public async Task Rejections_and_closes_are_counted_by_reason_on_the_ChatScale_meter()
    {
        await using var node = await TestNode.StartAsync(o => o.MaxIncomingFrameBytes = 16);
        var meters = node.Services.GetRequiredService<IMeterFactory>();
        using var rejected = new MetricCollector<long>(meters, "ChatScale", "chatscale.websocket.rejected");
        using var closed = new MetricCollector<long>(meters, "ChatScale", "chatscale.websocket.closed");

        await node.ConnectExpectingStatusAsync("alice", origin: "https://evil.example");
        await node.ConnectExpectingStatusAsync(user: null);
        using var client = await node.ConnectAsync("alice");
        await client.SendTextAsync($"\"{new string('x', 64)}\"");
        await client.ReceiveCloseAsync();

        await Poll.UntilAsync(() => closed.GetMeasurementSnapshot().Count == 1, "the close is counted");
        Assert.Equal(["origin", "unauthenticated"], rejected.GetMeasurementSnapshot().Select(m => (string)m.Tags["reason"]!).Order());
        Assert.Equal("message_too_big", closed.LastMeasurement!.Tags["outcome"]);
    }
}
