using System.Collections.Concurrent;

namespace ChatScale.Redis.Internal;

/// <summary>
/// The acknowledgements this node waits for: a join or leave it announced returns once every node that presence said
/// hosts the user has applied it (or the wait times out).
/// </summary>
internal sealed class GroupChangeAcks
{
    private readonly ConcurrentDictionary<Guid, Waiter> _waiters = new();

    /// <summary>Waits for acknowledgements of <paramref name="changeId"/> from each of <paramref name="nodes"/>; call <see cref="Forget"/> after.</summary>
    public Waiter Expect(Guid changeId, IEnumerable<string> nodes)
    {
        var waiter = new Waiter(nodes);
        _waiters[changeId] = waiter;
        return waiter;
    }

    public void Forget(Guid changeId) => _waiters.TryRemove(changeId, out _);

    /// <summary>An acknowledgement arrived on this node's ack channel.</summary>
    public void Received(byte[]? message)
    {
        if (GroupChange.TryDecodeAck(message, out var changeId, out var nodeId) && _waiters.TryGetValue(changeId, out var waiter))
        {
            waiter.Acknowledge(nodeId);
        }
    }

    /// <summary>Completes when every node expected to apply a change has acknowledged it.</summary>
    internal sealed class Waiter(IEnumerable<string> nodes)
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly HashSet<string> _remaining = new(nodes, StringComparer.Ordinal);

        public Task Done => _done.Task;

        public int Remaining
        {
            get
            {
                lock (_remaining)
                {
                    return _remaining.Count;
                }
            }
        }

        // An acknowledgement from a node that presence did not name (it registered the user meanwhile) is ignored.
        public void Acknowledge(string nodeId)
        {
            lock (_remaining)
            {
                if (!_remaining.Remove(nodeId) || _remaining.Count > 0)
                {
                    return;
                }
            }

            _done.TrySetResult();
        }
    }
}
