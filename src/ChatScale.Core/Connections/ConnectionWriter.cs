using System.Buffers;

namespace ChatScale.Connections;

/// <summary>
/// The single writer of one <see cref="ClientConnection"/>: while the connection is scheduled, it hands the
/// transport every frame queued at that moment as one burst (<see cref="IConnectionTransport.SendBatchAsync"/>: one
/// flush, one socket write) and keeps going while frames arrive; it never runs twice at once.
/// </summary>
/// <remarks>
/// Allocated once per connection, on its first frame. It runs as the connection's thread-pool work item, or straight
/// on the delivering thread at the end of a <see cref="DeliveryBatch"/>. A send that completes synchronously costs no
/// further hop; one that waits resumes the writer on the thread that completes it.
/// </remarks>
internal sealed class ConnectionWriter(ClientConnection connection, IConnectionTransport transport) : IThreadPoolWorkItem
{
    // A burst is every frame queued at that moment, up to this many frames and (past the first frame) this many bytes.
    internal const int MaxBurstFrames = 64;
    internal const int MaxBurstBytes = 64 * 1024;

    // The burst being sent while a send is pending.
    private ReadOnlyMemory<byte>[]? _burst;
    private int _burstCount;
    private ValueTask _pending;
    private Action? _onSendCompleted;

    /// <summary>Runs the writer until the queue is empty or a send has to wait.</summary>
    public void Execute()
    {
        while (true)
        {
            var burst = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(MaxBurstFrames);
            var count = connection.TakeBurst(burst, MaxBurstBytes, out var closing);
            if (count == 0)
            {
                ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(burst);
                if (closing)
                {
                    connection.Finish();
                }

                return;
            }

            ValueTask send;
            try
            {
                send = transport.SendBatchAsync(burst.AsMemory(0, count), connection.StopToken);
            }
            catch (Exception ex)
            {
                Release(burst, count);
                connection.Fail(ex);
                return;
            }

            if (!send.IsCompleted)
            {
                _burst = burst;
                _burstCount = count;
                _pending = send;
                send.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onSendCompleted ??= OnSendCompleted);
                return;
            }

            if (!Completed(send, burst, count))
            {
                return;
            }
        }
    }

    private void OnSendCompleted()
    {
        var send = _pending;
        var burst = _burst!;
        _pending = default;
        _burst = null;
        if (Completed(send, burst, _burstCount))
        {
            Execute();
        }
    }

    private bool Completed(ValueTask send, ReadOnlyMemory<byte>[] burst, int count)
    {
        try
        {
            send.GetAwaiter().GetResult();
            return true;
        }
        catch (OperationCanceledException) when (connection.IsStopRequested)
        {
            // Closing or aborted: go on to the close handshake, if one was asked for.
            connection.Finish();
            return false;
        }
        catch (Exception ex)
        {
            connection.Fail(ex);
            return false;
        }
        finally
        {
            Release(burst, count);
        }
    }

    private static void Release(ReadOnlyMemory<byte>[] burst, int count)
    {
        burst.AsSpan(0, count).Clear();
        ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(burst);
    }
}
