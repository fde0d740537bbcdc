using System.Text;
using ChatScale.Backplane;
using ChatScale.Connections;
using ChatScale.Core.Tests.TestSupport;

namespace ChatScale.Core.Tests.Connections;

public sealed class DeliverEnvelopeTests
{
    [Fact]
    public async Task Deliver_DecodedEnvelope_ReachesEveryListedUserHereIncludingUnusualIds()
    {
        using var connections = new LocalConnections(Opts.Create());
        string[] users = ["alice", "Zoë 🚀", "line\nbreak", new string('x', 1024)];
        var transports = users.Select(u =>
        {
            var t = new RecordingTransport();
            connections.Add(u, t);
            return t;
        }).ToArray();
        var bystander = new RecordingTransport();
        connections.Add("bystander", bystander);
        var payload = Encoding.UTF8.GetBytes("{\"text\":\"hi\"}");
        var envelope = EnvelopeCodec.Decode(EnvelopeCodec.Encode(EnvelopeKind.Users, "node-b", Guid.NewGuid(), [.. users, "not-here"], payload));

        Assert.Equal(users.Length, connections.Deliver(envelope));

        foreach (var t in transports)
        {
            await t.WaitForCountAsync(1);
            Assert.Equal(payload, t.Frames[0]);
        }

        Assert.Equal(0, bystander.Count);
    }

    [Fact]
    public async Task Deliver_AllEnvelope_ReachesEveryConnection()
    {
        using var connections = new LocalConnections(Opts.Create());
        var a = new RecordingTransport();
        var b = new RecordingTransport();
        connections.Add("a", a);
        connections.Add("b", b);

        Assert.Equal(2, connections.Deliver(EnvelopeCodec.Decode(EnvelopeCodec.Encode(EnvelopeKind.All, "n", Guid.NewGuid(), [], [1]))));
        await a.WaitForCountAsync(1);
        await b.WaitForCountAsync(1);
    }

    [Fact]
    public async Task Deliver_EnvelopeBuiltFromStrings_UsesItsRecipientList()
    {
        using var connections = new LocalConnections(Opts.Create());
        var alice = new RecordingTransport();
        connections.Add("alice", alice);

        Assert.Equal(1, connections.Deliver(new BackplaneEnvelope(EnvelopeKind.Users, "n", Guid.NewGuid(), ["alice", "bob"], new byte[] { 7 })));
        await alice.WaitForCountAsync(1);
    }

    [Fact]
    public void Decode_KeepsRecipientsEncodedUntilAskedAndThenGivesTheSameStrings()
    {
        string[] users = ["alice", "Zoë 🚀"];
        var envelope = EnvelopeCodec.Decode(EnvelopeCodec.Encode(EnvelopeKind.Users, "n", Guid.NewGuid(), users, []));

        Assert.Equal(2, envelope.RecipientCount);
        Assert.True(envelope.HasEncodedRecipients);
        Assert.Equal(users, envelope.Recipients);
        Assert.Same(envelope.Recipients, envelope.Recipients);
    }
}
