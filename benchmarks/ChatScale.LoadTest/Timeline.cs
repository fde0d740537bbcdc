using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;

namespace ChatScale.LoadTest;

/// <summary>
/// Diagnostic for <c>--timeline DIR</c>: what this process (a node or the driver) went through, each event stamped with
/// <see cref="Stopwatch.GetTimestamp"/> (CLOCK_MONOTONIC on Linux, so comparable across the processes of one run) to
/// line up with the latency phase's per-delivery timeline. Recorded: GC pauses (suspension to restart) and collections
/// (generation, reason), thread-pool thread-count changes (with the hill climber's reason), lock contention over
/// 0.1 ms, a dedicated thread's 1 ms sleeps that overslept by more than 2 ms (the process not scheduled: CPU
/// contention), and 1 ms probes queued to the thread pool that waited more than 2 ms to run (its queue).
/// </summary>
internal sealed class Timeline : EventListener
{
    private static readonly long Anchor = Stopwatch.GetTimestamp();
    private static readonly DateTime AnchorUtc = DateTime.UtcNow;
    private static Timeline? _instance;

    private readonly ConcurrentQueue<string> _events = new();
    private long _suspendStart;
    private int _gcDepth = -1;
    private volatile bool _stop;

    private Timeline()
    {
        var probe = new Thread(Probe) { IsBackground = true, Name = "timeline-probe", Priority = ThreadPriority.Normal };
        probe.Start();
    }

    /// <summary>Starts the process's timeline once; later calls return the same one.</summary>
    public static Timeline Start() => LazyInitializer.EnsureInitialized(ref _instance, () => new Timeline());

    /// <summary>The events stamped at or after <paramref name="from"/>, one per line: timestamp, kind, milliseconds, detail.</summary>
    public string Since(long from)
    {
        var text = new StringBuilder();
        foreach (var line in _events)
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (long.Parse(line.AsSpan(0, space), CultureInfo.InvariantCulture) >= from)
            {
                text.Append(line).Append('\n');
            }
        }

        return text.ToString();
    }

    public override void Dispose()
    {
        _stop = true;
        base.Dispose();
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            // GC (0x1), contention (0x4000), threading (0x10000).
            EnableEvents(eventSource, EventLevel.Informational, (EventKeywords)(0x1 | 0x4000 | 0x10000));
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        var ts = Anchor + (long)((e.TimeStamp.ToUniversalTime() - AnchorUtc).TotalSeconds * Stopwatch.Frequency);
        switch (e.EventName)
        {
            case "GCSuspendEEBegin_V1":
                _suspendStart = ts;
                break;
            case "GCRestartEEEnd_V1":
                if (_suspendStart != 0)
                {
                    Add(_suspendStart, "gc-pause", Recorder.Ms(ts - _suspendStart), $"gen{_gcDepth}");
                    _suspendStart = 0;
                }

                break;
            case "GCStart_V2":
                _gcDepth = Convert.ToInt32(Payload(e, "Depth"), CultureInfo.InvariantCulture);
                Add(ts, "gc-start", 0, $"gen{_gcDepth} reason={Payload(e, "Reason")} type={Payload(e, "Type")}");
                break;
            case "ThreadPoolWorkerThreadAdjustmentAdjustment":
                Add(ts, "tp-adjust", 0, $"threads={Payload(e, "NewWorkerThreadCount")} reason={Payload(e, "Reason")}");
                break;
            case "ContentionStop_V1":
                var ns = Convert.ToDouble(Payload(e, "DurationNs"), CultureInfo.InvariantCulture);
                if (ns > 100_000)
                {
                    Add(ts - (long)(ns * Stopwatch.Frequency / 1e9), "contention", ns / 1e6, string.Empty);
                }

                break;
        }
    }

    private static object? Payload(EventWrittenEventArgs e, string name)
    {
        var i = e.PayloadNames?.IndexOf(name) ?? -1;
        return i >= 0 ? e.Payload![i] : null;
    }

    private void Add(long ts, string kind, double ms, string detail)
        => _events.Enqueue(string.Create(CultureInfo.InvariantCulture, $"{ts} {kind} {ms:F3} {detail}"));

    private void Probe()
    {
        var threshold = 2 * Stopwatch.Frequency / 1000;
        while (!_stop)
        {
            var before = Stopwatch.GetTimestamp();
            Thread.Sleep(1);
            var after = Stopwatch.GetTimestamp();
            if (after - before - (Stopwatch.Frequency / 1000) > threshold)
            {
                Add(before, "os-stall", Recorder.Ms(after - before), string.Empty);
            }

            ThreadPool.UnsafeQueueUserWorkItem(
                static state =>
                {
                    var (self, queued) = state;
                    var waited = Stopwatch.GetTimestamp() - queued;
                    if (waited > 2 * Stopwatch.Frequency / 1000)
                    {
                        self.Add(queued, "tp-wait", Recorder.Ms(waited), string.Empty);
                    }
                },
                (this, after),
                preferLocal: false);
        }
    }
}
