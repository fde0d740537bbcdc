namespace ChatScale;

/// <summary>
/// Options of a ChatScale node, bound from the <c>ChatScale</c> configuration section and validated at startup.
/// </summary>
public sealed class ChatScaleOptions
{
    /// <summary>The configuration section the options bind from.</summary>
    public const string SectionName = "ChatScale";

    /// <summary>
    /// This node's id, unique among the nodes sharing a backplane. Defaults to the machine name plus a random suffix,
    /// so two processes on one machine never collide.
    /// </summary>
    public string NodeId { get; set; } = $"{Environment.MachineName}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>How many frames each connection may have queued before <see cref="SlowConsumerPolicy"/> applies. Default 256.</summary>
    public int SendQueueCapacity { get; set; } = 256;

    /// <summary>What to do when a connection's send queue is full. Default <see cref="ChatScale.SlowConsumerPolicy.DropOldest"/>.</summary>
    public SlowConsumerPolicy SlowConsumerPolicy { get; set; } = SlowConsumerPolicy.DropOldest;

    /// <summary>
    /// Under <see cref="SlowConsumerPolicy.Close"/>, how long the frame already being written to a client whose queue
    /// overflowed may still take before the connection is aborted; once it is written, the client gets the 1008 close
    /// frame (queued frames are discarded). Default 10 s.
    /// </summary>
    public TimeSpan SlowConsumerCloseTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The largest frame a client may send, in bytes; larger ones close the connection with 1009. Default 64 KiB.</summary>
    public int MaxIncomingFrameBytes { get; set; } = 64 * 1024;

    /// <summary>The largest payload ChatScale will publish or accept from the backplane, in bytes. Default 1 MiB.</summary>
    public int MaxPayloadBytes { get; set; } = 1024 * 1024;

    /// <summary>How often this node marks itself alive in presence. Default 5 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long after its last heartbeat a node's connections count as offline. Must exceed
    /// <see cref="HeartbeatInterval"/>; default 15 s.
    /// </summary>
    public TimeSpan PresenceTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>On graceful shutdown, how long to let send queues drain before sockets are closed. Default 5 s.</summary>
    public TimeSpan ShutdownDrainTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Background dispatcher options.</summary>
    public DispatcherOptions Dispatcher { get; set; } = new();
}
