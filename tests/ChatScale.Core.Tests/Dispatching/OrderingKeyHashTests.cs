using ChatScale.Dispatching;

namespace ChatScale.Core.Tests.Dispatching;

public sealed class OrderingKeyHashTests
{
    // Published FNV-1a 32-bit test vectors: the hash must never change, or keys would move lanes/partitions.
    [Theory]
    [InlineData("", 0x811C9DC5u)]
    [InlineData("a", 0xE40C292Cu)]
    [InlineData("foobar", 0xBF9CF968u)]
    public void Fnv1a_KnownVectors_MatchTheStandard(string key, uint expected)
    {
        Assert.Equal(expected, OrderingKeyHash.Fnv1a(key));
    }

    [Fact]
    public void Fnv1a_NonAsciiKey_HashesItsUtf8Bytes()
    {
        const string key = "gespräch-🙂";
        var expected = 2166136261u;
        foreach (var b in System.Text.Encoding.UTF8.GetBytes(key))
        {
            expected = (expected ^ b) * 16777619u;
        }

        Assert.Equal(expected, OrderingKeyHash.Fnv1a(key));
    }

    [Fact]
    public void Lane_ManyKeys_SpreadOverAllLanesWithinRange()
    {
        var counts = new int[16];
        for (var i = 0; i < 1600; i++)
        {
            counts[OrderingKeyHash.Lane($"conversation-{i}", counts.Length)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 50, 150));
    }
}
