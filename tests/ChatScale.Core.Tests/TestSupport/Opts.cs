using Microsoft.Extensions.Options;

namespace ChatScale.Core.Tests.TestSupport;

internal static class Opts
{
    public static IOptions<ChatScaleOptions> Create(Action<ChatScaleOptions>? configure = null)
    {
        var options = new ChatScaleOptions { NodeId = "node-test" };
        configure?.Invoke(options);
        return Microsoft.Extensions.Options.Options.Create(options);
    }
}
