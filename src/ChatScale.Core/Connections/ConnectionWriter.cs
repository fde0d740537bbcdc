using System.Buffers;

namespace ChatScale.Connections;

/// <summary>
/// The single writer of one <see cref="ClientConnection"/>: takes every frame queued at that moment and hands them to
/// the transport as one burst, until the queue is empty or the connection stops. It is the connection's thread-pool
/// work item, queued once per wake-up (not per frame) and allocated once per connection.
/// </summary>
/// <remarks>
/// A send that completes synchronously costs no further hop; one that waits resumes the writer on the thread that
/// completes it. The connection never schedules it twice at once, so its fields need no lock.
/// </remarks>
internal sealed class ConnectionWriter : IThreadPoolWorkItem
{
    // A burst is every frame queued at that moment, up to this many frames and (past the first frame) this many bytes.
    private const int MaxBurstFrames = 64;
    private const int MaxBurstBytes = 64 * 1024;

    private readonly ClientConnection _connection;
    private readonly IConnectionTransport _transport;
    private readonly CancellationToken _stop;

    // The burst being sent while a send is pending.
    private ReadOnlyMemory<byte>[]? _burst;
    private int _burstCount;
    private ValueTask _pending;
    private Action? _onSendCompleted;

    public ConnectionWriter(ClientConnection connection, IConnectionTransport transport, CancellationToken stop)
    {
        _connection = connection;
        _transport = transport;
        _stop = stop;
    }

    public void Execute() => Drain();

    private void Drain()
    {
        while (true)
        {
            var burst = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(MaxBurstFrames);
            var count = _connection.TakeBurst(burst, MaxBurstBytes, out var closing);
            if (count == 0)
            {
                ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(burst);
                if (closing)
                {
                    _connection.Finish();
                }

                return;
            }

            ValueTask send;
            try
            {
                send = _transport.SendBatchAsync(burst.AsMemory(0, count), _stop);
            }
            catch (Exception ex)
            {
                ReleaseBurst(burst, count);
                _connection.Fail(ex);
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
            Drain();
        }
    }

    private bool Completed(ValueTask send, ReadOnlyMemory<byte>[] burst, int count)
    {
        try
        {
            send.GetAwaiter().GetResult();
            return true;
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Closing or aborted: go on to the close handshake, if one was asked for.
            _connection.Finish();
            return false;
        }
        catch (Exception ex)
        {
            _connection.Fail(ex);
            return false;
        }
        finally
        {
            ReleaseBurst(burst, count);
        }
    }

    private static void ReleaseBurst(ReadOnlyMemory<byte>[] burst, int count)
    {
        burst.AsSpan(0, count).Clear();
        ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(burst);
    }
}
