using System.Diagnostics;

namespace ChatScale.LoadTest;

/// <summary>A one-line console progress bar of the deliveries of messages [from, to).</summary>
internal sealed class Progress : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public Progress(string label, int from, int to, Recorder recorder, int perMessage)
    {
        var expected = (long)(to - from) * perMessage;
        var interactive = !Console.IsErrorRedirected;
        _loop = Task.Run(async () =>
        {
            var clock = Stopwatch.StartNew();
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(interactive ? 250 : 5000, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }

                var done = recorder.DeliveredBetween(from, to);
                var share = expected == 0 ? 1 : Math.Min(1.0, done / (double)expected);
                var bar = new string('#', (int)(share * 30)).PadRight(30, '.');
                var line = $"{label,-10} [{bar}] {share,4:P0} {done:N0}/{expected:N0} deliveries, {done / Math.Max(0.001, clock.Elapsed.TotalSeconds):N0}/s";
                Console.Error.Write(interactive ? "\r" + line : line + Environment.NewLine);
            }

            if (interactive)
            {
                Console.Error.WriteLine();
            }
        });
    }

    public void Dispose()
    {
        _stop.Cancel();
        _loop.Wait();
        _stop.Dispose();
    }
}
