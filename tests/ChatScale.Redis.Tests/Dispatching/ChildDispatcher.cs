using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace ChatScale.Redis.Tests.Dispatching;

/// <summary>
/// A dispatcher hosted in a child process (<c>dotnet exec ChatScale.Redis.Tests.dll dispatcher-child ...</c>), so a
/// test can freeze it with SIGSTOP past its lease and resume it with SIGCONT. Its handler writes every attempt as a
/// <b>fenced side effect</b>: a record accepted only if the attempt's fencing token is at least the largest seen for
/// the key, which is how <see cref="JobContext.FencingToken"/> is meant to be used.
/// </summary>
internal static class ChildDispatcher
{
    /// <summary>KEYS: guard hash, records list. ARGV: key, token, record. 1 when accepted, 0 when fenced out.</summary>
    public const string FencedRecord = """
        local seen = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
        if tonumber(ARGV[2]) < seen then
          return 0
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('RPUSH', KEYS[2], ARGV[3])
        return 1
        """;

    public static RedisKey Guard(string prefix) => "{" + prefix + ":test}:guard";

    public static RedisKey Records(string prefix) => "{" + prefix + ":test}:records";

    /// <summary>Runs one attempt's side effect: "host|seq|token|start|end" (Stopwatch timestamps: one clock on this machine).</summary>
    public static async Task<bool> RecordAsync(IDatabase db, string prefix, string host, Numbered job, JobContext context, long start)
    {
        var record = string.Create(CultureInfo.InvariantCulture, $"{host}|{job.Seq}|{context.FencingToken}|{start}|{Stopwatch.GetTimestamp()}");
        return (long)await db.ScriptEvaluateAsync(FencedRecord, [Guard(prefix), Records(prefix)], [job.Conversation, context.FencingToken, record]) == 1;
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var (connection, prefix) = (args[1], args[2]);
        var db = default(IDatabase);
        var behavior = new JobBehavior<Numbered>(async (job, context, _) =>
        {
            var start = Stopwatch.GetTimestamp();
            Console.WriteLine($"running {job.Seq} token {context.FencingToken}");
            await Task.Delay(TimeSpan.FromMilliseconds(job.Seq == 0 ? 1500 : 10), CancellationToken.None); // the test freezes us in here
            var accepted = await RecordAsync(db!, prefix, "child", job, context, start);
            Console.WriteLine(accepted ? $"recorded {job.Seq}" : $"fenced-out {job.Seq}");
        });
        await using var host = await DispatcherHost.StartAsync(connection, prefix, "child", b => b.AddBehavior(behavior), d => d.Partitions = 1, r => r.LeaseTtl = TimeSpan.FromSeconds(1));
        db = host.Multiplexer.GetDatabase();
        while (host.Dispatcher.OwnedPartitionCount == 0)
        {
            await Task.Delay(20);
        }

        Console.WriteLine("owns " + host.Dispatcher.InstanceId);
        string? line;
        while ((line = await Console.In.ReadLineAsync()) is not null)
        {
            if (line == "logs")
            {
                foreach (var record in host.Logs.GetSnapshot().Where(r => r.Id.Id == 2516))
                {
                    Console.WriteLine("log 2516 " + record.Message);
                }

                Console.WriteLine("end of logs");
            }
        }

        return 0;
    }
}

/// <summary>The test assembly's entry point: only used to host <see cref="ChildDispatcher"/>.</summary>
internal static class Program
{
    public static Task<int> Main(string[] args)
        => args.Length > 0 && args[0] == "dispatcher-child" ? ChildDispatcher.RunAsync(args) : Task.FromResult(2);
}
