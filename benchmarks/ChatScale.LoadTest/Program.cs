using ChatScale.LoadTest;

// dotnet run -c Release --project benchmarks/ChatScale.LoadTest -- run [--quick] [--systems chatscale,signalr]
//     [--nodes 2] [--users 1000] [--group 50] [--messages 20000] [--warmup 2000] [--concurrency 16] [--window 64]
//     [--dispatch] [--redis-cluster] [--out DIR]   (--redis-cluster: a local 3-master cluster, sharded pub/sub, per-master shares)   (--systems chatscale,chatscale-dispatch compares both forms in one run)
//     --systems chatscale,chatscale-groups: the same users as a list vs a named group (IGroupManager)
// dotnet run -c Release --project benchmarks/ChatScale.LoadTest -- compare [--runs 3] [--groups 5,50,500] [--quick]
// dotnet run -c Release --project benchmarks/ChatScale.LoadTest -- massconnect [--users 10000]
// dotnet run -c Release --project benchmarks/ChatScale.LoadTest -- idle [--max 50000]
// dotnet run -c Release --project benchmarks/ChatScale.LoadTest -- floor [--group 5] [--rate N] [--runs 1]   (the HTTP POST alone: /send returns without publishing)
var parsed = new Args(args);
return parsed.Verb switch
{
    "node" => await NodeHost.RunAsync(parsed),
    "run" => await Driver.RunAsync(parsed),
    "compare" => await Driver.CompareAsync(parsed),
    "chart" => await Driver.ChartAsync(parsed),
    "massconnect" => await MassConnect.RunAsync(parsed),
    "idle" => await IdleScale.RunAsync(parsed),
    "floor" => await Floor.RunAsync(parsed),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: ChatScale.LoadTest run|compare|massconnect|idle|floor [options]  (see Program.cs and docs/benchmarks.md)");
    return 2;
}
