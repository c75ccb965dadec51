using Pinhole.EdgeHost.Configuration;

namespace Pinhole.EdgeHost.Tests.Configuration;

/// <summary>edge.json <c>expose</c>: the only LAN services tunnels may reach (docs/tunnels.md).</summary>
public class ExposeConfigTests
{
    private static ConfigLoadResult Parse(string expose) => EdgeConfigLoader.Parse(
        $$"""{ "deviceId": "gw1", "token": "t", "relays": [ "wss://relay.example.com/uplink" ], "expose": {{expose}} }""");

    [Fact]
    public void Valid_entries_load_with_their_targets()
    {
        var result = Parse("""[ { "name": "ssh", "target": "127.0.0.1:22" }, { "name": "nvr", "target": "nvr.lan:80" }, { "name": "v6", "target": "[fd00::1]:8080" } ]""");
        Assert.Empty(result.Problems);
        Assert.Equal(["ssh", "nvr", "v6"], result.Config!.Expose.Select(e => e.Name));
        Assert.True(ExposeConfig.TryParseTarget("[fd00::1]:8080", out var host, out var port, out _));
        Assert.Equal(("fd00::1", 8080), (host, port));
        Assert.Empty(EdgeConfigLoader.Parse("""{ "deviceId": "gw1", "token": "t", "relays": [ "wss://r/uplink" ] }""").Config!.Expose);
    }

    [Theory]
    [InlineData("""[ { "name": "ssh" } ]""", "expose[0].target", "required")]
    [InlineData("""[ { "name": "ssh", "target": "127.0.0.1" } ]""", "expose[0].target", "must be HOST:PORT")]
    [InlineData("""[ { "name": "ssh", "target": "127.0.0.1:99999" } ]""", "expose[0].target", "port must be 1-65535")]
    [InlineData("""[ { "name": "ssh", "target": "fd00::1:22" } ]""", "expose[0].target", "IPv6 address goes in brackets")]
    [InlineData("""[ { "name": "a b", "target": "127.0.0.1:22" } ]""", "expose[0].name", "must be 1-64")]
    [InlineData("""[ { "name": "ssh", "target": "127.0.0.1:22" }, { "name": "ssh", "target": "127.0.0.1:23" } ]""", "expose[1].name", "duplicate expose name")]
    [InlineData("""[ { "name": "ssh", "target": "127.0.0.1:22", "port": 1 } ]""", "expose[0].port", "")]
    [InlineData("""[ { "name": "ui", "target": "127.0.0.1:22" } ]""", "expose[0].name", "reserved for the device's own page")]
    [InlineData("""{ "name": "ssh" }""", "expose", "")]
    public void Bad_entries_are_reported_with_their_path(string expose, string path, string message)
    {
        var result = Parse(expose);
        var problem = Assert.Single(result.Problems, p => p.Path == path);
        Assert.Contains(message, problem.Message, StringComparison.Ordinal);
    }
}
