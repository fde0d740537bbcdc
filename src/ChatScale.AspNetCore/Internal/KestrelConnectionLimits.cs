using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Internal;

/// <summary>
/// Keeps Kestrel below the process's open-file limit when the host left <see cref="KestrelServerLimits.MaxConcurrentConnections"/>
/// unset: connections not (yet) upgraded get a third of what the process has left (see <see cref="FileBudget"/>) (an upgraded WebSocket counts against
/// <see cref="KestrelServerLimits.MaxConcurrentUpgradedConnections"/> instead, and ChatScale caps those itself).
/// Without it, a client opening sockets without upgrading reaches EMFILE, where Kestrel's accept loop spins on the
/// error and the node stops serving everyone. Over the limit Kestrel closes new connections at once.
/// </summary>
internal sealed class KestrelConnectionLimits : IPostConfigureOptions<KestrelServerOptions>
{
    public void PostConfigure(string? name, KestrelServerOptions options)
    {
        options.Limits.MaxConcurrentConnections ??= FileDescriptorLimit.Budget?.Http;
    }
}
