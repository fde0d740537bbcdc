namespace ChatScale.Connections;

/// <summary>
/// The writers that one batch of deliveries scheduled, run on the delivering thread once the whole batch is queued:
/// every frame the batch brought a connection goes out in one burst (one write, one flush), and no writer costs a
/// thread-pool hop. A writer whose send has to wait resumes elsewhere, so a slow client never holds up the batch.
/// </summary>
/// <remarks>Not thread-safe: one caller at a time (<see cref="LocalConnections"/> keeps a spare one for reuse).</remarks>
internal sealed class DeliveryBatch
{
    // An array grown past this by a huge batch (a broadcast to every connection) is not kept for the next one.
    internal const int KeptWriters = 16 * 1024;

    private ConnectionWriter?[] _writers = new ConnectionWriter?[16];
    private int _count;

    /// <summary>Whether the batch is small enough to keep for the next one.</summary>
    public bool IsWorthKeeping => _writers.Length <= KeptWriters;

    /// <summary>Adds a writer the batch scheduled (each at most once: its connection was not scheduled before).</summary>
    public void Add(ConnectionWriter writer)
    {
        if (_count == _writers.Length)
        {
            Array.Resize(ref _writers, _writers.Length * 2);
        }

        _writers[_count++] = writer;
    }

    /// <summary>Runs every writer the batch scheduled, in the order they were scheduled.</summary>
    public void Run()
    {
        var writers = _writers;
        for (var i = 0; i < _count; i++)
        {
            var writer = writers[i]!;
            writers[i] = null;
            try
            {
                writer.Execute();
            }
            catch
            {
                // Every scheduled writer must run: hand the rest to the thread pool before the failure surfaces.
                for (var j = i + 1; j < _count; j++)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(writers[j]!, preferLocal: false);
                    writers[j] = null;
                }

                _count = 0;
                throw;
            }
        }

        _count = 0;
    }
}
