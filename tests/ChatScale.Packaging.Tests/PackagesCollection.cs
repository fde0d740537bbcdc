namespace ChatScale.Packaging.Tests;

/// <summary>The tests that consume the packed packages share one pack.</summary>
[CollectionDefinition(Name)]
public sealed class PackagesCollection : ICollectionFixture<PackedPackages>
{
    public const string Name = "packed packages";
}
