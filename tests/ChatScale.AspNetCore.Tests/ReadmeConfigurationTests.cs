using System.Text;
using System.Text.RegularExpressions;
using ChatScale.Redis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace ChatScale.AspNetCore.Tests;

/// <summary>
/// README's "Configuration" block is real configuration: every key in it names an option (a misspelt or removed one
/// fails here), and the values pass the same validation a host runs at startup.
/// </summary>
public sealed partial class ReadmeConfigurationTests
{
    [Fact]
    public void The_README_configuration_block_names_only_real_options_and_passes_startup_validation()
    {
        var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(ReadmeJsonBlock()))).Build();

        // Every key binds to a property: the three sections are bound separately, each refusing keys it does not know.
        var redisSection = configuration.GetSection(ChatScaleRedisOptions.SectionName);
        var endpointSection = configuration.GetSection(ChatScaleEndpointOptions.SectionName);
        var core = new ConfigurationBuilder().AddInMemoryCollection(
            configuration.GetSection(ChatScaleOptions.SectionName).AsEnumerable(makePathsRelative: true)
                .Where(p => p.Value is not null && !p.Key.StartsWith("Redis:", StringComparison.Ordinal) && !p.Key.StartsWith("Endpoint:", StringComparison.Ordinal)))
            .Build();
        static void Strict(BinderOptions o) => o.ErrorOnUnknownConfiguration = true;
        Assert.NotNull(core.Get<ChatScaleOptions>(Strict));
        Assert.NotNull(endpointSection.Get<ChatScaleEndpointOptions>(Strict));
        Assert.NotNull(redisSection.Get<ChatScaleRedisOptions>(Strict));

        // The host's own binding and validation (what fails startup naming the option) accept the values.
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        services.AddMetrics();
        services.AddChatScale().AddRedis();
        using var provider = services.BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<ChatScaleOptions>>().Value;
        var endpoint = provider.GetRequiredService<IOptions<ChatScaleEndpointOptions>>().Value;
        var redis = provider.GetRequiredService<IOptions<ChatScaleRedisOptions>>().Value;

        Assert.Equal("web-1", options.NodeId);
        Assert.Equal(64, options.Dispatcher.WorkerCount);
        Assert.Equal(["https://chat.example.com"], endpoint.AllowedOrigins);
        Assert.Equal(RedisRoutingMode.Targeted, redis.RoutingMode);
    }

    private static string ReadmeJsonBlock()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ChatScale.sln")))
        {
            directory = directory.Parent;
        }

        Assert.NotNull(directory);
        var readme = File.ReadAllText(Path.Combine(directory.FullName, "README.md"));
        var start = readme.IndexOf("\n## Configuration", StringComparison.Ordinal);
        Assert.True(start >= 0, "README has no '## Configuration' section");
        var end = readme.IndexOf("\n## ", start + 1, StringComparison.Ordinal);
        var section = readme[start..(end < 0 ? readme.Length : end)];
        return Assert.Single(JsonBlock().Matches(section)).Groups[1].Value;
    }

    [GeneratedRegex(@"^```json\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex JsonBlock();
}
