using ChatScale.AspNetCore;

namespace ChatScale.Reliability.Tests.Infrastructure;

/// <summary>Echoes each accepted client message back to its sender, so a test can see what the endpoint accepted.</summary>
internal sealed class EchoHandler : IClientMessageHandler
{
    public ValueTask OnConnectedAsync(ChatScaleConnectionContext connection, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask OnMessageAsync(ChatScaleConnectionContext connection, ReadOnlyMemory<byte> utf8Json, CancellationToken cancellationToken)
    {
        connection.TrySend(utf8Json.ToArray());
        return ValueTask.CompletedTask;
    }

    public ValueTask OnDisconnectedAsync(ChatScaleConnectionContext connection, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
