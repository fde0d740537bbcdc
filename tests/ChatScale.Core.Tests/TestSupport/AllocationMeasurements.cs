namespace ChatScale.Core.Tests.TestSupport;

/// <summary>Tests that measure allocations across the whole process run alone, never beside other tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationMeasurements
{
    public const string Name = "Allocation measurements";
}
