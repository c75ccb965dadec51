using Pinhole.EdgeHost.Configuration;

namespace Pinhole.EdgeHost.Tests.Configuration;

/// <summary>edge.json <c>rtspServer</c>: the LAN RTSP server that re-serves streams published to the relay (docs/rtsp.md).</summary>
public class RtspServerConfigTests
{
    private static ConfigLoadResult Parse(string rtspServer) => EdgeConfigLoader.Parse(
        $$"""{ "deviceId": "gw1", "token": "t", "relays": [ "wss://relay.example.com/uplink" ], "rtspServer": {{rtspServer}} }""");

    [Fact]
    public void A_valid_section_loads_and_an_absent_one_means_off()
    {
        var result = Parse("""{ "listen": "0.0.0.0:8554", "users": [ { "name": "nvr", "password": "secret" } ] }""");
        Assert.Empty(result.Problems);
        Assert.Equal("0.0.0.0:8554", result.Config!.RtspServer!.Listen);
        Assert.Equal(("nvr", "secret"), (result.Config.RtspServer.Users[0].Name, result.Config.RtspServer.Users[0].Password));
        Assert.Equal("0.0.0.0:8554", Parse("""{ "users": [ { "name": "nvr", "password": "x" } ] }""").Config!.RtspServer!.Listen);
        Assert.Empty(Parse("""{ "listen": "[::]:8554", "users": [ { "name": "nvr", "password": "x" } ] }""").Problems);
        Assert.Null(EdgeConfigLoader.Parse("""{ "deviceId": "gw1", "token": "t", "relays": [ "wss://r/uplink" ] }""").Config!.RtspServer);
    }

    [Theory]
    [InlineData("""{ "listen": "0.0.0.0:8554" }""", "rtspServer.users", "required")]
    [InlineData("""{ "users": [] }""", "rtspServer.users", "at least one user")]
    [InlineData("""{ "listen": "0.0.0.0", "users": [ { "name": "a", "password": "b" } ] }""", "rtspServer.listen", "must be IP:PORT")]
    [InlineData("""{ "listen": "nvr.lan:8554", "users": [ { "name": "a", "password": "b" } ] }""", "rtspServer.listen", "must be IP:PORT")]
    [InlineData("""{ "listen": "0.0.0.0:70000", "users": [ { "name": "a", "password": "b" } ] }""", "rtspServer.listen", "must be IP:PORT")]
    [InlineData("""{ "users": [ { "name": "a" } ] }""", "rtspServer.users[0].password", "required")]
    [InlineData("""{ "users": [ { "name": "a", "password": "" } ] }""", "rtspServer.users[0].password", "must not be empty")]
    [InlineData("""{ "users": [ { "name": "a:b", "password": "x" } ] }""", "rtspServer.users[0].name", "without ':'")]
    [InlineData("""{ "users": [ { "name": "a", "password": "x" }, { "name": "a", "password": "y" } ] }""", "rtspServer.users[1].name", "listed twice")]
    [InlineData("""{ "users": [ { "name": "a", "password": "x" } ], "port": 1 }""", "rtspServer.port", "")]
    public void Bad_sections_are_reported_with_their_path(string rtspServer, string path, string message)
    {
        var result = Parse(rtspServer);
        var problem = Assert.Single(result.Problems, p => p.Path == path);
        Assert.Contains(message, problem.Message, StringComparison.Ordinal);
    }
}
