// The load tests compare latencies and memory on a small shared machine: run one test at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
