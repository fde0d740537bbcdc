namespace ChatScale;

/// <summary>What to do when a connection's send queue is full because the client reads too slowly.</summary>
public enum SlowConsumerPolicy
{
    /// <summary>Drop the oldest queued frame to make room (counted in <c>chatscale.frames.dropped</c>). The client stays connected and sees a gap.</summary>
    DropOldest = 0,

    /// <summary>
    /// Close the connection with status 1008 (policy violation) so the client reconnects and catches up from history.
    /// Queued frames are discarded; the frame being written may finish within
    /// <see cref="ChatScaleOptions.SlowConsumerCloseTimeout"/>, then the close frame follows. A client that reads
    /// nothing for that long is aborted without a close frame.
    /// </summary>
    Close = 1,
}
