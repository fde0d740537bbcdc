using System.Diagnostics;
using ChatScale.Dispatching;
using StackExchange.Redis;

namespace ChatScale.Redis.Internal.Dispatching;

/// <summary>
/// The enqueue path of <see cref="RedisStreamDispatcher"/>: encodes a job into its one binary stream field, appends it
/// to its partition stream (or the shared stream) with one <c>XADD</c>, retrying while Redis is unreachable for up to
/// <see cref="RedisDispatcherOptions.EnqueueRetryTimeout"/>, then wakes the stream's owner.
/// </summary>
internal sealed class JobEnqueuer
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(200);

    private readonly DispatcherRuntime _runtime;
    private readonly DispatcherWakeUps _wakeUps;
    private readonly TimeSpan _retryTimeout;
    private readonly int? _maxStreamLength;
    private readonly RedisKey[] _streams; // per partition, built once: no key string per job

    public JobEnqueuer(DispatcherRuntime runtime, DispatcherWakeUps wakeUps, TimeSpan retryTimeout, int? maxStreamLength)
    {
        _runtime = runtime;
        _wakeUps = wakeUps;
        _retryTimeout = retryTimeout;
        _maxStreamLength = maxStreamLength;
        _streams = new RedisKey[runtime.Partitions];
        for (var i = 0; i < _streams.Length; i++)
        {
            _streams[i] = runtime.Keys.Partition(i, "jobs");
        }
    }

    public ValueTask<string> EnqueueAsync(JobTypeRegistration registration, object job, string? orderingKey, CancellationToken cancellationToken)
    {
        var guid = Guid.CreateVersion7();
        var keyHash = orderingKey is null ? 0 : OrderingKeyHash.Fnv1a(orderingKey);
        var partition = orderingKey is null ? -1 : OrderingKeyHash.Lane(keyHash, _runtime.Partitions);
        var stream = partition < 0 ? _runtime.Keys.SharedJobs : _streams[partition];
        var data = StreamJob.Encode(guid, registration.Name, orderingKey, _runtime.Time.GetUtcNow(), Activity.Current?.Context ?? default, registration.Serialize(job));
        return new ValueTask<string>(AddAsync(stream, data, partition, keyHash, guid.ToString("N"), cancellationToken));
    }

    private async Task<string> AddAsync(RedisKey stream, byte[] data, int partition, uint keyHash, string id, CancellationToken cancellationToken)
    {
        var started = _runtime.Time.GetTimestamp();
        var mayBeStored = false;
        while (true)
        {
            try
            {
                var add = _runtime.Database.StreamAddAsync(stream, StreamJob.Field, data, maxLength: _maxStreamLength, useApproximateMaxLength: _maxStreamLength is not null);
                await RedisFailures.WaitAsync(add, cancellationToken).ConfigureAwait(false);
                break;
            }
            catch (Exception ex) when (DispatcherRuntime.IsUnavailable(ex))
            {
                mayBeStored |= RedisFailures.MayHaveRun(ex);
                var remaining = _retryTimeout - _runtime.Time.GetElapsedTime(started);
                if (remaining <= TimeSpan.Zero)
                {
                    RedisLog.EnqueueFailed(_runtime.Logger, ex);
                    throw new BackplaneUnavailableException(
                        mayBeStored
                            ? $"Redis did not confirm the enqueue of job {id} (a timeout, or the connection dropped after the command was sent): "
                                + "it may have been stored, and then it runs under this id; handlers dedupe by JobContext.JobId."
                            : $"Redis is unreachable: job {id} was not enqueued (nothing was sent); retry later or answer 503.",
                        ex)
                    {
                        MayHaveSucceeded = mayBeStored,
                    };
                }

                await Task.Delay(remaining < RetryDelay ? remaining : RetryDelay, _runtime.Time, cancellationToken).ConfigureAwait(false);
            }
        }

        _wakeUps.JobAdded(partition, keyHash);
        return id;
    }
}
