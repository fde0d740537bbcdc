namespace ChatScale.AspNetCore.Internal;

/// <summary>Whether this node still accepts connections; shared by the endpoint and the shutdown sequence.</summary>
internal sealed class ChatScaleNodeState
{
    private int _stopping;

    public bool IsStopping => Volatile.Read(ref _stopping) != 0;

    // Interlocked is a full fence: the endpoint adds its connection, then reads this flag; shutdown sets it, then
    // enumerates connections. Either shutdown sees the connection or the endpoint sees the flag.
    public void StopAccepting() => Interlocked.Exchange(ref _stopping, 1);
}
