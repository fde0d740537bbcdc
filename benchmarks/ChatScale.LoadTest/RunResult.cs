namespace ChatScale.LoadTest;

/// <summary>The figures of one measured run of one system.</summary>
internal sealed record RunResult
{
    public required string System { get; init; }
    public required string Mode { get; init; }
    public int Run { get; init; }
    public int Nodes { get; init; }
    public int Users { get; init; }
    public int GroupSize { get; init; }
    public int Messages { get; init; }
    public int WarmupMessages { get; init; }
    public long ExpectedDeliveries { get; init; }
    public long Deliveries { get; init; }
    public long LostDeliveries { get; init; }
    public long DuplicateDeliveries { get; init; }
    public double ElapsedSeconds { get; init; }
    public double DeliveriesPerSecond { get; init; }
    public double E2eP50Ms { get; init; }
    public double E2eP99Ms { get; init; }
    public double E2eMaxMs { get; init; }
    public double HttpP50Ms { get; init; }
    public double HttpP99Ms { get; init; }
    public long HttpErrors { get; init; }
    public double LatencyPhaseDeliveriesPerSecond { get; init; }
    public double SaturatedE2eP50Ms { get; init; }
    public double SaturatedE2eP99Ms { get; init; }
    public double SaturatedHttpP99Ms { get; init; }
    public double RedisCommandsPerMessage { get; init; }
    public double RedisPublishesPerMessage { get; init; }
    public Dictionary<string, double> RedisCommandsPerMessageByName { get; init; } = [];
    public double ServerCpuSeconds { get; init; }
    public double CpuMicrosPerDelivery { get; init; }
    public double RedisCpuSeconds { get; init; }
    public double DriverCpuSeconds { get; init; }
    public double DriverCpuShare { get; init; }
    public double ServerPeakRssMiB { get; init; }
    public int ClientFaults { get; init; }
    public double ReadinessSeconds { get; init; }

    /// <summary>Methods the nodes JIT-compiled during the measured phase (summed over the nodes), and the time it took.</summary>
    public long NodeJitMethods { get; init; }
    public double NodeJitMs { get; init; }

    /// <summary>Thread-pool work items the nodes ran during the measured phase, per message (both nodes together).</summary>
    public double NodeWorkItemsPerMessage { get; init; }
}
