namespace ChatScale.Redis;

/// <summary>How <see cref="RedisMessageBroadcaster"/> routes a message to the nodes hosting its recipients.</summary>
public enum RedisRoutingMode
{
    /// <summary>
    /// Look the recipients up in presence (one round-trip), then publish one envelope per hosting node on that node's
    /// channel, carrying only that node's recipients. Nodes hosting none of the recipients receive nothing. Offline
    /// recipients are reported in <see cref="PublishResult.OfflineUsers"/>. The default.
    /// </summary>
    Targeted = 0,

    /// <summary>
    /// Publish once on the all-nodes channel; every node delivers to whichever recipients it hosts. No presence lookup,
    /// so offline recipients are not reported. Suits audiences so large that most nodes host some of them.
    /// </summary>
    Broadcast = 1,
}
