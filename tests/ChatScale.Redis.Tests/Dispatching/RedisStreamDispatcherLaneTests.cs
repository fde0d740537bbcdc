using System.Collections.Concurrent;
using ChatScale.Redis.Internal;
using ChatScale.Redis.Internal.Dispatching;
using ChatScale.Redis.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// No head-of-line blocking inside a partition (everything here runs on one partition), and partitions spread over
/// instances by rendezvous hashing. Facts asserted are orders and counts, not times (times are in the benchmarks).
/// </summary>
[Collection(RedisCollection.Name)]
public sealed class RedisStreamDispatcherLaneTests(RedisFixture redis, ITestOutputHelper output)
{
    private static void OnePartition(DispatcherOptions d)
    {
        d.Partitions = 1;
        d.MaxAttempts = 5;
        d.InitialBackoff = TimeSpan.FromMilliseconds(200);
    }

    [Fact]
    public async Task AKeyFailingFourTimesWithBackoff_DoesNotHoldBackTheOtherKeysOfItsPartition()
    {
        var prefix = RedisFixture.UniquePrefix("lanes-retry");
        var completed = new ConcurrentQueue<string>();
        var behavior = new JobBehavior<Numbered>((job, context, _) =>
        {
            if (job.Conversation == "bad" && context.Attempt < 5)
            {
                throw new InvalidOperationException("fails four times");
            }

            completed.Enqueue(job.Conversation + ":" + job.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return default;
        });

        await using var host = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), OnePartition, start: false);
        await host.EnqueueAsync(new Numbered("bad", 0), "bad");
        for (var i = 0; i < 20; i++)
        {
            await host.EnqueueAsync(new Numbered("good" + (i % 5).ToString(System.Globalization.CultureInfo.InvariantCulture), i), "good" + (i % 5).ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        await host.EnqueueAsync(new Numbered("bad", 1), "bad");
        await host.Dispatcher.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => completed.Count == 22, "every job", TimeSpan.FromSeconds(30));

        // The retrying key finished last (its backoff alone is ≥ 0.2 + 0.4 + 0.8 + 1.6 s less jitter), after all 20
        // jobs of the other keys that were enqueued behind it in the same partition; its own second job waited for it.
        var order = completed.ToArray();
        output.WriteLine(string.Join(' ', order));
        Assert.Equal(["bad:0", "bad:1"], order[^2..]);
        Assert.Equal(20, order[..20].Count(x => x.StartsWith("good", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task AKeyWithAThousandQueuedJobs_DoesNotHoldBackAJobOfAnotherKeyQueuedBehindThem()
    {
        var prefix = RedisFixture.UniquePrefix("lanes-flood");
        var floodDone = 0;
        var floodDoneWhenOtherRan = -1;
        var behavior = new JobBehavior<Numbered>(async (job, _, ct) =>
        {
            if (job.Conversation == "flood")
            {
                await Task.Delay(2, ct);
                Interlocked.Increment(ref floodDone);
            }
            else
            {
                Volatile.Write(ref floodDoneWhenOtherRan, Volatile.Read(ref floodDone));
            }
        });

        await using var host = await DispatcherHost.StartAsync(redis.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), OnePartition, start: false);
        var db = host.Multiplexer.GetDatabase();
        var batch = new List<Task>();
        for (var i = 0; i < 1000; i++)
        {
            batch.Add(host.EnqueueAsync(new Numbered("flood", i), "flood").AsTask());
        }

        await Task.WhenAll(batch);
        await host.EnqueueAsync(new Numbered("other", 0), "other");
        await host.Dispatcher.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => Volatile.Read(ref floodDoneWhenOtherRan) >= 0, "the other key's job", TimeSpan.FromSeconds(60));
        output.WriteLine($"the other key's job ran after {floodDoneWhenOtherRan} of the 1,000 flood jobs");

        // The flood runs one job at a time (≥ 2 ms each); the other key's job only waits for its entry to be read.
        // Generous bound for a loaded 2-core box: it must not wait for even half of the flood.
        Assert.True(floodDoneWhenOtherRan < 500, $"the other key waited for {floodDoneWhenOtherRan} flood jobs");
        await Eventually.TrueAsync(() => Volatile.Read(ref floodDone) == 1000, "the flood to finish, in its own lane", TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void RendezvousAssignment_JoinOrLeaveOfOneOfFourInstances_MovesAtMostAThirdOfSixtyFourPartitions()
    {
        string[] four = ["3f2a9c1e0b7d4e5f8a6b1c2d3e4f5a6b", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "deadbeefcafebabe0123456789abcdef"];
        string[] three = four[..3];
        string[] five = [.. four, "5555aaaa5555aaaa5555aaaa5555aaaa"];
        Assert.InRange(Moved(four, three), 1, 22); // leave: only the leaver's partitions move (≤ 35 % of 64 = 22)
        Assert.InRange(Moved(three, four), 1, 22); // join: only what the newcomer wins moves
        Assert.InRange(Moved(four, five), 1, 22);

        // Over many random member sets, the share moved is about 1/N (here 1/4), never nearly all as with mod N.
        double total = 0;
        for (var trial = 0; trial < 200; trial++)
        {
            var members = Enumerable.Range(0, 4).Select(_ => Guid.NewGuid().ToString("N")).ToArray();
            total += Moved(members, members[..3]) / 64.0;
        }

        output.WriteLine($"mean share moved when one of 4 leaves: {total / 200:P1}");
        Assert.InRange(total / 200, 0.20, 0.30);
    }

    [Fact]
    public async Task FourInstances_OwnThePartitionsRendezvousHashingAssigns_AndOneLeavingMovesOnlyItsOwn()
    {
        var prefix = RedisFixture.UniquePrefix("lanes-hrw");
        var behavior = new JobBehavior<Numbered>((_, _, _) => default);
        void Options(DispatcherOptions d) => d.Partitions = 64;
        void Lease(RedisDispatcherOptions r) => r.LeaseTtl = TimeSpan.FromSeconds(3);
        var hosts = new List<DispatcherHost>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                hosts.Add(await DispatcherHost.StartAsync(redis.ConnectionString, prefix, $"node-{i}", b => b.AddBehavior(behavior), Options, Lease));
            }

            var ids = hosts.Select(h => h.Dispatcher.InstanceId).ToArray();
            var db = hosts[0].Multiplexer.GetDatabase();
            var keys = new RedisKeyspace(prefix, sharded: false);
            async Task<string?[]> OwnersAsync()
            {
                var owners = new string?[64];
                for (var p = 0; p < 64; p++)
                {
                    var value = (string?)await db.StringGetAsync(keys.Partition(p, "lease"));
                    owners[p] = value?[..value.IndexOf(':', StringComparison.Ordinal)];
                }

                return owners;
            }

            var expected = Enumerable.Range(0, 64).Select(p => RendezvousAssignment.Owner(p, ids)).ToArray();
            await Eventually.TrueAsync(async () => (await OwnersAsync()).SequenceEqual(expected), "the rendezvous assignment in Redis", TimeSpan.FromSeconds(30));

            await hosts[3].DisposeAsync();
            hosts.RemoveAt(3);
            var after = Enumerable.Range(0, 64).Select(p => RendezvousAssignment.Owner(p, ids[..3])).ToArray();
            await Eventually.TrueAsync(async () => (await OwnersAsync()).SequenceEqual(after), "the assignment of the three left", TimeSpan.FromSeconds(30));
            var moved = Enumerable.Range(0, 64).Count(p => expected[p] != after[p]);
            output.WriteLine($"{moved} of 64 partitions moved when one of 4 instances left");
            Assert.Equal(expected.Count(o => o == ids[3]), moved);
        }
        finally
        {
            foreach (var host in hosts)
            {
                await host.DisposeAsync();
            }
        }
    }

    private static int Moved(string[] before, string[] after)
        => Enumerable.Range(0, 64).Count(p => RendezvousAssignment.Owner(p, before) != RendezvousAssignment.Owner(p, after));
}

/// <summary>The dispatcher on the local 3-master cluster: every partition in its own slot, spread over all masters.</summary>
[Collection(RedisClusterCollection.Name)]
public sealed class RedisStreamDispatcherClusterTests(RedisClusterFixture cluster, ITestOutputHelper output)
{
    [Fact]
    public async Task OnACluster_PartitionsLandOnEveryMaster_AndKeyedAndUnkeyedJobsRunInOrder()
    {
        var prefix = RedisFixture.UniquePrefix("cluster-dispatch");
        var done = new ConcurrentDictionary<string, ConcurrentQueue<int>>();
        var behavior = new JobBehavior<Numbered>((job, _, _) =>
        {
            done.GetOrAdd(job.Conversation, _ => new()).Enqueue(job.Seq);
            return default;
        });
        void Options(DispatcherOptions d) => d.Partitions = 64;
        await using var a = await DispatcherHost.StartAsync(cluster.ConnectionString, prefix, "node-a", b => b.AddBehavior(behavior), Options);
        await using var b = await DispatcherHost.StartAsync(cluster.ConnectionString, prefix, "node-b", b => b.AddBehavior(behavior), Options);

        var keys = new RedisKeyspace(prefix, sharded: false);
        var masters = new HashSet<string>();
        for (var p = 0; p < 64; p++)
        {
            var endpoint = a.Multiplexer.GetServer(a.Multiplexer.GetDatabase().IdentifyEndpoint(keys.Partition(p, "jobs"))!);
            masters.Add(endpoint.EndPoint.ToString()!);
        }

        output.WriteLine($"64 partitions on {masters.Count} masters");
        Assert.Equal(3, masters.Count);

        for (var seq = 0; seq < 50; seq++)
        {
            await (seq % 2 == 0 ? a : b).EnqueueAsync(new Numbered("c" + (seq % 10).ToString(System.Globalization.CultureInfo.InvariantCulture), seq), "c" + (seq % 10).ToString(System.Globalization.CultureInfo.InvariantCulture));
            await a.EnqueueAsync(new Numbered("unkeyed", seq));
        }

        await Eventually.TrueAsync(() => done.Values.Sum(q => q.Count) == 100, "every job", TimeSpan.FromSeconds(60));
        foreach (var (key, seqs) in done)
        {
            if (key != "unkeyed")
            {
                Assert.Equal(seqs.Order(), seqs);
            }
        }
    }
}
