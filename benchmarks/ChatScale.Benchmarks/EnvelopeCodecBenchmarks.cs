using BenchmarkDotNet.Attributes;
using ChatScale.Backplane;

namespace ChatScale.Benchmarks;

/// <summary>Encoding and decoding one backplane envelope with 50 recipients and a 256-byte payload.</summary>
[MemoryDiagnoser]
public class EnvelopeCodecBenchmarks
{
    private readonly string[] _recipients = Enumerable.Range(0, 50).Select(i => $"user-{i:D6}").ToArray();
    private readonly byte[] _payload = new byte[256];
    private readonly Guid _id = Guid.CreateVersion7();
    private byte[] _encoded = null!;

    [GlobalSetup]
    public void Setup() => _encoded = Encode();

    [Benchmark]
    public byte[] Encode() => EnvelopeCodec.Encode(EnvelopeKind.Users, "node-1", _id, _recipients, _payload);

    [Benchmark]
    public BackplaneEnvelope Decode() => EnvelopeCodec.Decode(_encoded);
}
