using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class InMemoryBackgroundDispatcherDiagnosticsTests
{
    [Fact]
    public async Task Attempts_EachOutcome_CountedOnDispatchJobsCounterAndDurationHistogram()
    {
        await using var harness = new DispatcherHarness(
            o =>
            {
                o.MaxAttempts = 3;
                o.InitialBackoff = TimeSpan.Zero;
                o.MaxBackoff = TimeSpan.Zero;
            },
            new FakeTimeProvider());
        using var jobs = new MetricCollector<long>(harness.MeterFactory, "ChatScale", "chatscale.dispatch.jobs");
        using var durations = new MetricCollector<double>(harness.MeterFactory, "ChatScale", "chatscale.dispatch.duration");
        harness.Probe.OnHandle = (job, context, _) => job.Sequence switch
        {
            1 => ValueTask.CompletedTask,
            2 when context.Attempt == 3 => ValueTask.CompletedTask,
            _ => throw new InvalidOperationException("fails"),
        };
        await harness.StartAsync();

        await harness.EnqueueAsync(null, 1); // succeeds at once
        await harness.EnqueueAsync(null, 2); // retried twice, then succeeds
        await harness.EnqueueAsync(null, 3); // retried twice, then dead-lettered
        await harness.WaitForStatisticsAsync(s => s is { Pending: 0, InFlight: 0, DeadLettered: 1 });

        var measurements = jobs.GetMeasurementSnapshot();
        Assert.All(measurements, m => Assert.Equal(1, m.Value));
        Assert.Equal(2, measurements.Count(m => m.MatchesTags(new KeyValuePair<string, object?>("outcome", "succeeded"))));
        Assert.Equal(4, measurements.Count(m => m.MatchesTags(new KeyValuePair<string, object?>("outcome", "retried"))));
        Assert.Equal(1, measurements.Count(m => m.MatchesTags(new KeyValuePair<string, object?>("outcome", "dead_lettered"))));
        Assert.Equal(7, durations.GetMeasurementSnapshot().Count);
    }

    [Fact]
    public async Task BacklogGauges_Observed_ReportStatistics()
    {
        await using var harness = new DispatcherHarness(o => o.MaxAttempts = 1);
        using var pending = new MetricCollector<long>(harness.MeterFactory, "ChatScale", "chatscale.dispatch.pending");
        using var dead = new MetricCollector<long>(harness.MeterFactory, "ChatScale", "chatscale.dispatch.dead_lettered");
        harness.Probe.OnHandle = (_, _, _) => throw new InvalidOperationException("fails");
        await harness.EnqueueAsync(null, 1);
        await harness.EnqueueAsync("k", 2);
        await harness.EnqueueAsync(null, 3);

        pending.RecordObservableInstruments();
        var pendingBeforeStart = pending.LastMeasurement?.Value;
        await harness.StartAsync();
        await harness.WaitForStatisticsAsync(s => s.DeadLettered == 3);
        dead.RecordObservableInstruments();
        pending.RecordObservableInstruments();

        Assert.Equal(3, pendingBeforeStart);
        Assert.Equal(0, pending.LastMeasurement?.Value);
        Assert.Equal(3, dead.LastMeasurement?.Value);
    }

    [Fact]
    public async Task Attempts_TracingEnabled_OneDispatchActivityPerAttemptWithJobTags()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "ChatScale",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var harness = new DispatcherHarness(o =>
        {
            o.InitialBackoff = TimeSpan.Zero;
            o.MaxBackoff = TimeSpan.Zero;
        });
        harness.Probe.OnHandle = (_, context, _) => context.Attempt == 1 ? throw new InvalidOperationException("once") : ValueTask.CompletedTask;
        await harness.StartAsync();

        var id = await harness.EnqueueAsync("conversation-9", 1);
        await harness.WaitForIdleAsync();

        // Other tests may run in parallel: only this job's spans count.
        var spans = stopped.Where(a => a.OperationName == "chatscale.dispatch" && (string?)a.GetTagItem("chatscale.job.id") == id).ToArray();
        Assert.Equal(2, spans.Length);
        Assert.All(spans, a => Assert.Equal(typeof(TestJob).FullName, a.GetTagItem("chatscale.job.type")));
        Assert.All(spans, a => Assert.Equal("conversation-9", a.GetTagItem("chatscale.job.ordering_key")));
        Assert.Equal([1, 2], spans.Select(a => (int)a.GetTagItem("chatscale.job.attempt")!).Order());
        Assert.Equal(ActivityStatusCode.Error, spans.Single(a => (int)a.GetTagItem("chatscale.job.attempt")! == 1).Status);
        Assert.Equal(ActivityStatusCode.Ok, spans.Single(a => (int)a.GetTagItem("chatscale.job.attempt")! == 2).Status);
    }

    [Fact]
    public async Task EnqueueAsync_InsideAnActivity_DispatchActivityLinksToIt()
    {
        var stopped = new ConcurrentQueue<Activity>();
        using var source = new ActivitySource("ChatScale.Tests.Enqueuer");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "ChatScale" or "ChatScale.Tests.Enqueuer",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);
        await using var harness = new DispatcherHarness();
        await harness.StartAsync();

        string id;
        ActivityContext request;
        using (var activity = source.StartActivity("request")!)
        {
            request = activity.Context;
            id = await harness.EnqueueAsync(null, 1);
        }

        await harness.WaitForIdleAsync();

        var span = Assert.Single(stopped, a => a.OperationName == "chatscale.dispatch" && (string?)a.GetTagItem("chatscale.job.id") == id);
        Assert.Equal(request.TraceId, Assert.Single(span.Links).Context.TraceId);
        Assert.NotEqual(request.TraceId, span.TraceId);
    }
}
