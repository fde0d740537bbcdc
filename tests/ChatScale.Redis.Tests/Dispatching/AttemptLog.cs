using System.Collections.Concurrent;
using System.Diagnostics;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>Start and end (Stopwatch timestamps, one clock for every host in the process) of every attempt.</summary>
internal sealed class AttemptLog
{
    private readonly ConcurrentQueue<Attempt> _attempts = new();

    public IReadOnlyList<Attempt> Attempts => [.. _attempts];

    public static long Now => Stopwatch.GetTimestamp();

    public void Add(string host, Numbered job, JobContext context, long start, long end, bool completed)
        => _attempts.Enqueue(new Attempt(host, job.Conversation, job.Seq, context.Attempt, context.FencingToken, start, end, completed));

    /// <summary>Per key: no two attempts overlap in time, and attempts start in enqueue order (a re-run repeats, never goes back further).</summary>
    public void AssertNoOverlapAndInOrder()
    {
        foreach (var key in Attempts.GroupBy(a => a.Key))
        {
            var byStart = key.OrderBy(a => a.Start).ToArray();
            for (var i = 1; i < byStart.Length; i++)
            {
                Assert.True(byStart[i].Start >= byStart[i - 1].End,
                    $"key {key.Key}: attempt of seq {byStart[i].Seq} on {byStart[i].Host} started {Ms(byStart[i - 1].End - byStart[i].Start):F0} ms before the attempt of seq {byStart[i - 1].Seq} on {byStart[i - 1].Host} ended");
                Assert.True(byStart[i].Seq >= byStart[i - 1].Seq || byStart[i - 1].Completed == false || byStart[i].Number > 1,
                    $"key {key.Key}: seq {byStart[i].Seq} ran after seq {byStart[i - 1].Seq}");
            }

            // Every seq completed, and the first completions are in enqueue order.
            var firstCompletions = byStart.Where(a => a.Completed).GroupBy(a => a.Seq).Select(g => g.First()).OrderBy(a => a.End).Select(a => a.Seq).ToArray();
            Assert.Equal(firstCompletions.Order(), firstCompletions);
        }
    }

    public static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    internal sealed record Attempt(string Host, string Key, int Seq, int Number, long Token, long Start, long End, bool Completed);
}
