namespace ChatScale.LoadTest;

/// <summary>The background-dispatch form of a send: the node enqueues this job and a worker publishes it.</summary>
internal sealed record BroadcastJob(int Group, int Size, byte[] Payload);
