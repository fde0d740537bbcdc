namespace ChatScale;

/// <summary>A snapshot of a dispatcher's backlog.</summary>
/// <param name="Pending">Jobs accepted but not yet started (including those waiting for a retry).</param>
/// <param name="InFlight">Jobs whose handler is running now.</param>
/// <param name="DeadLettered">Jobs parked in the dead-letter queue.</param>
public readonly record struct DispatcherStatistics(long Pending, long InFlight, long DeadLettered);
