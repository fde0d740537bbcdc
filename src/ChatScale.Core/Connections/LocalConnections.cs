using System.Collections.Concurrent;
using System.Text;
using ChatScale.Backplane;
using ChatScale.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace ChatScale.Connections;

/// <summary>
/// The local fan-out engine: every client connection held by this node, by user. <see cref="Deliver(IReadOnlyList{string}, ReadOnlyMemory{byte})"/> queues one
/// shared frame on each recipient's connections without waiting for any socket and without allocating per
/// recipient; each connection is scheduled once when it has frames and writes them as one burst.
/// </summary>
/// <remarks>
/// Thread-safe: connects, disconnects and deliveries may run concurrently. A connection added before a
/// <see cref="Deliver(IReadOnlyList{string}, ReadOnlyMemory{byte})"/> call starts receives that frame; one removed before it starts does not.
/// </remarks>
public sealed class LocalConnections : IDisposable
{
    private readonly ConcurrentDictionary<string, UserConnections> _byUser = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, UserConnections>.AlternateLookup<ReadOnlySpan<char>> _byUserSpan;
    private readonly ConcurrentDictionary<string, ClientConnection> _byId = new(StringComparer.Ordinal);
    private readonly ChatScaleOptions _options;
    private readonly ChatScaleMetrics _metrics;
    private readonly ILogger _logger;

    /// <summary>Creates the engine.</summary>
    /// <param name="options">The node options (queue capacity, slow-consumer policy, node id).</param>
    /// <param name="loggerFactory">Logging; optional.</param>
    /// <param name="meterFactory">Metrics; optional.</param>
    public LocalConnections(IOptions<ChatScaleOptions> options, ILoggerFactory? loggerFactory = null, System.Diagnostics.Metrics.IMeterFactory? meterFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _byUserSpan = _byUser.GetAlternateLookup<ReadOnlySpan<char>>();
        _metrics = new ChatScaleMetrics(meterFactory);
        _logger = (ILogger?)loggerFactory?.CreateLogger<LocalConnections>() ?? NullLogger.Instance;
        _metrics.ObserveQueueDepth(TotalQueuedFrames);
    }

    /// <summary>This node's id.</summary>
    public string NodeId => _options.NodeId;

    /// <summary>How many connections this node holds.</summary>
    public int Count => _byId.Count;

    /// <summary>
    /// Adds a connection for <paramref name="userId"/>. The connection receives every
    /// <see cref="Deliver(IReadOnlyList{string}, ReadOnlyMemory{byte})"/> that starts after this returns.
    /// </summary>
    /// <param name="userId">The authenticated user.</param>
    /// <param name="transport">The transport to write frames to.</param>
    /// <returns>The connection.</returns>
    public ClientConnection Add(string userId, IConnectionTransport transport)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        ArgumentNullException.ThrowIfNull(transport);
        var connection = new ClientConnection(Guid.CreateVersion7().ToString("N"), userId, transport, this, _options, _metrics, _logger);
        _byId[connection.ConnectionId] = connection;
        while (true)
        {
            var entry = _byUser.GetOrAdd(userId, static _ => new UserConnections());
            lock (entry)
            {
                // An entry emptied by a concurrent Remove is dead: it was (or is being) taken out of the map.
                if (entry.Dead)
                {
                    continue;
                }

                var current = entry.Items;
                var next = new ClientConnection[current.Length + 1];
                current.CopyTo(next, 0);
                next[^1] = connection;
                entry.Items = next;
                break;
            }
        }

        _metrics.ConnectionOpened();
        CoreLog.ConnectionOpened(_logger, connection.ConnectionId, userId);
        return connection;
    }

    /// <summary>
    /// Queues <paramref name="payload"/> on every connection of each user in <paramref name="userIds"/> held by this
    /// node. Users with no connection here are skipped. Never waits on a socket.
    /// </summary>
    /// <param name="userIds">The recipients.</param>
    /// <param name="payload">The frame, shared by every queue (not copied).</param>
    /// <returns>How many connections the frame was queued on.</returns>
    public int Deliver(IReadOnlyList<string> userIds, ReadOnlyMemory<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(userIds);
        var queued = 0;
        for (var i = 0; i < userIds.Count; i++)
        {
            if (_byUser.TryGetValue(userIds[i], out var entry))
            {
                queued += entry.Enqueue(payload);
            }
        }

        _metrics.Delivered(queued);
        return queued;
    }

    /// <summary>
    /// Delivers a decoded backplane envelope: its payload to every connection here of each recipient it lists (or to
    /// every connection, for <see cref="EnvelopeKind.All"/>). Recipients are looked up straight from the received
    /// UTF-8, without creating a string per recipient.
    /// </summary>
    /// <param name="envelope">The envelope, as returned by <see cref="EnvelopeCodec.Decode"/>.</param>
    /// <returns>How many connections the payload was queued on.</returns>
    public int Deliver(BackplaneEnvelope envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (envelope.Kind == EnvelopeKind.All)
        {
            return DeliverToAll(envelope.Payload);
        }

        if (!envelope.HasEncodedRecipients)
        {
            return Deliver(envelope.Recipients, envelope.Payload);
        }

        // A user id is at most MaxUserIdBytes of UTF-8, hence at most as many UTF-16 chars.
        Span<char> userId = stackalloc char[EnvelopeLimits.MaxUserIdBytes];
        var block = envelope.EncodedRecipients.Span;
        var payload = envelope.Payload;
        var queued = 0;
        var pos = 0;
        for (var i = 0; i < envelope.RecipientCount; i++)
        {
            var chars = Encoding.UTF8.GetChars(EnvelopeCodec.NextRecipient(block, ref pos), userId);
            if (_byUserSpan.TryGetValue(userId[..chars], out var entry))
            {
                queued += entry.Enqueue(payload);
            }
        }

        _metrics.Delivered(queued);
        return queued;
    }

    /// <summary>Queues <paramref name="payload"/> on every connection this node holds.</summary>
    /// <param name="payload">The frame, shared by every queue.</param>
    /// <returns>How many connections the frame was queued on.</returns>
    public int DeliverToAll(ReadOnlyMemory<byte> payload)
    {
        var queued = 0;
        foreach (var pair in _byId)
        {
            if (pair.Value.TryEnqueue(payload))
            {
                queued++;
            }
        }

        _metrics.Delivered(queued);
        return queued;
    }

    /// <summary>Whether <paramref name="userId"/> has at least one connection on this node.</summary>
    /// <param name="userId">The user.</param>
    /// <returns><see langword="true"/> when connected here.</returns>
    public bool IsConnected(string userId) => _byUser.TryGetValue(userId, out var entry) && entry.Items.Length > 0;

    /// <summary>The open connection <paramref name="connectionId"/> of this node, if there is one.</summary>
    /// <param name="connectionId">The connection's id.</param>
    /// <param name="connection">The connection, when found.</param>
    /// <returns><see langword="true"/> when this node holds it and it is not closing.</returns>
    public bool TryGetConnection(string connectionId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ClientConnection? connection)
        => _byId.TryGetValue(connectionId, out connection);

    /// <summary>The connections <paramref name="userId"/> has on this node (a snapshot).</summary>
    /// <param name="userId">The user.</param>
    /// <returns>The connections; empty when none.</returns>
    public IReadOnlyList<ClientConnection> GetConnections(string userId)
        => _byUser.TryGetValue(userId, out var entry) ? entry.Items : [];

    /// <summary>
    /// Closes every connection: stops accepting frames, lets queues drain for up to <paramref name="drainTimeout"/>,
    /// then closes each transport with <paramref name="status"/> (graceful shutdown uses 1001 Going Away).
    /// </summary>
    /// <param name="status">The close status.</param>
    /// <param name="description">A short reason.</param>
    /// <param name="drainTimeout">How long queued frames may still be written.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when every connection has closed.</returns>
    public Task CloseAllAsync(ConnectionCloseStatus status, string description, TimeSpan drainTimeout, CancellationToken cancellationToken = default)
    {
        var closing = new List<Task>(_byId.Count);
        foreach (var pair in _byId)
        {
            closing.Add(pair.Value.CloseAsync(status, description, drainTimeout, cancellationToken));
        }

        return Task.WhenAll(closing);
    }

    /// <summary>Disposes the engine's metrics. Close connections first with <see cref="CloseAllAsync"/>.</summary>
    public void Dispose() => _metrics.Dispose();

    internal void Remove(ClientConnection connection)
    {
        if (!_byId.TryRemove(new KeyValuePair<string, ClientConnection>(connection.ConnectionId, connection)))
        {
            return;
        }

        if (_byUser.TryGetValue(connection.UserId, out var entry))
        {
            lock (entry)
            {
                var current = entry.Items;
                var index = Array.IndexOf(current, connection);
                if (index >= 0)
                {
                    if (current.Length == 1)
                    {
                        entry.Items = [];
                        entry.Dead = true;
                        _byUser.TryRemove(new KeyValuePair<string, UserConnections>(connection.UserId, entry));
                    }
                    else
                    {
                        var next = new ClientConnection[current.Length - 1];
                        Array.Copy(current, 0, next, 0, index);
                        Array.Copy(current, index + 1, next, index, current.Length - index - 1);
                        entry.Items = next;
                    }
                }
            }
        }

        _metrics.ConnectionClosed();
        CoreLog.ConnectionClosed(_logger, connection.ConnectionId, connection.UserId);
    }

    private long TotalQueuedFrames()
    {
        long total = 0;
        foreach (var pair in _byId)
        {
            total += pair.Value.QueuedFrames;
        }

        return total;
    }

    private sealed class UserConnections
    {
        // Copy-on-write: readers take the array without a lock; writers replace it under lock(this).
        private volatile ClientConnection[] _items = [];

        public ClientConnection[] Items
        {
            get => _items;
            set => _items = value;
        }

        public bool Dead { get; set; }

        public int Enqueue(ReadOnlyMemory<byte> payload)
        {
            var items = _items;
            var queued = 0;
            for (var j = 0; j < items.Length; j++)
            {
                if (items[j].TryEnqueue(payload))
                {
                    queued++;
                }
            }

            return queued;
        }
    }
}
