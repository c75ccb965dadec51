using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Tests.Configuration;

public class RelayConfigLoaderTests
{
    private static RelayConfig? Load(string json, out IReadOnlyList<string> problems) =>
        RelayConfigLoader.Load(json, Path.GetTempPath(), out problems);

    [Fact]
    public void The_minimal_form_from_the_interface_loads()
    {
        var config = Load("""
            {
              "http": "http://127.0.0.1:8080",
              "rtsp": "127.0.0.1:8554",
              "dataDir": "./relay-data",
              "devices": [ { "id": "gw1", "token": "a-long-random-secret" } ],
              "viewers": [ { "user": "alice", "password": "secret" } ]
            }
            """, out var problems);

        Assert.Empty(problems);
        Assert.NotNull(config);
        Assert.Equal("gw1", config.Devices[0].Id);
        Assert.Equal("alice", config.Viewers[0].User);
        Assert.True(Path.IsPathFullyQualified(config.DataDir));
    }

    [Fact]
    public void Every_problem_is_reported_once_with_its_path()
    {
        var config = Load("""
            {
              "http": "ftp://x",
              "rtsp": "nowhere",
              "colour": "blue",
              "tls": { "certificate": "missing.crt", "key": "missing.key", "extra": 1 },
              "devices": [ { "id": "bad id!", "token": "short" }, { "id": "gw1", "token": 5 } ],
              "viewers": [ { "user": "", "password": "" }, "alice" ]
            }
            """, out var problems);

        Assert.Null(config);
        string[] expected =
        [
            "colour: unknown key",
            "tls.extra: unknown key",
            "devices[1].token: must be a string",
            "viewers[1]: must be an object",
            "http: \"ftp://x\" is not an http:// or https:// URL",
            "rtsp: \"nowhere\" is not HOST:PORT (for example 127.0.0.1:8554)",
            "devices[0].id: \"bad id!\" must be 1-64 letters, digits, '-' or '_'",
            "devices[0].token: must be at least 16 characters",
            "devices[1].token: must be at least 16 characters",
            "viewers[0].user: must be non-empty, without ':' or control characters",
            "viewers[0].password: must not be empty",
        ];
        foreach (var line in expected) Assert.Contains(line, problems);
        Assert.Contains(problems, p => p.StartsWith("tls.certificate: file not found", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("tls.key: file not found", StringComparison.Ordinal));
        Assert.Equal(problems.Count, problems.Distinct().Count());
    }

    [Theory]
    [InlineData("", "not valid JSON")]
    [InlineData("[1,2]", "the file must hold one JSON object")]
    [InlineData("{\"http\": \"https://127.0.0.1:1\"}", "http: https:// needs \"tls\" with a certificate and key")]
    [InlineData("{\"devices\": [{\"id\":\"a\",\"token\":\"0123456789abcdef\"},{\"id\":\"a\",\"token\":\"0123456789abcdef\"}]}", "devices[1].id: \"a\" is listed twice")]
    public void Bad_files_are_refused_with_a_reason(string json, string expected)
    {
        Assert.Null(Load(json, out var problems));
        Assert.Contains(problems, p => p.StartsWith(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Comments_and_trailing_commas_are_accepted()
    {
        Assert.NotNull(Load("{ // local test\n \"rtsp\": \"localhost:0\", }", out var problems));
        Assert.Empty(problems);
    }

    [Theory]
    [InlineData("127.0.0.1:8554", true)]
    [InlineData("0.0.0.0:554", true)]
    [InlineData("[::1]:8554", true)]
    [InlineData("localhost:8554", true)]
    [InlineData("127.0.0.1", false)]
    [InlineData("127.0.0.1:70000", false)]
    [InlineData("host:x", false)]
    public void Rtsp_listen_address_parses(string text, bool ok) =>
        Assert.Equal(ok, RelayConfigLoader.TryParseEndPoint(text, out _));

    [Fact]
    public void Viewer_roles_default_to_viewer_admin_is_accepted_and_anything_else_is_a_problem()
    {
        var config = Load("""
            { "viewers": [ { "user": "alice", "password": "a", "role": "admin" }, { "user": "bob", "password": "b" }, { "user": "carol", "password": "c", "role": "viewer" } ] }
            """, out var problems);
        Assert.Empty(problems);
        Assert.Equal(["admin", "viewer", "viewer"], config!.Viewers.Select(v => v.Role));
        var directory = new Pinhole.Relay.Viewers.ViewerDirectory(config.Viewers);
        Assert.True(directory.IsAdmin("alice"));
        Assert.False(directory.IsAdmin("bob"));
        Assert.False(directory.IsAdmin("nobody"));

        Assert.Null(Load("""{ "viewers": [ { "user": "eve", "password": "e", "role": "owner" }, { "user": "x", "password": "y", "role": 1 } ] }""", out problems));
        Assert.Equal(["viewers[0].role: must be \"viewer\" or \"admin\" (got \"owner\")", "viewers[1].role: must be a string"], problems);
    }

    [Fact]
    public void Limits_and_the_safe_default_switches_load_and_bad_values_are_named()
    {
        var config = Load("""
            {
              "anonymousViewing": true,
              "rtspBasicOverPlaintext": true,
              "metrics": { "public": true },
              "limits": { "rtspConnections": 100, "rtspConnectionsPerAddress": 8, "camerasPerDevice": 4, "viewers": 600, "viewersPerUser": 2, "gopCacheMemory": "64MB" }
            }
            """, out var problems);
        Assert.Empty(problems);
        Assert.NotNull(config);
        Assert.True(config.AnonymousViewing);
        Assert.True(config.RtspBasicOverPlaintext);
        Assert.True(config.Metrics.Public);
        Assert.Equal((100, 8, 4, 600, 2, 64L << 20), (config.Limits.RtspConnections, config.Limits.RtspConnectionsPerAddress,
            config.Limits.CamerasPerDevice, config.Limits.Viewers, config.Limits.ViewersPerUser, config.Limits.GopCacheMemory));
        Assert.Contains(RelayConfigLoader.Notes(config), n => n.Contains("anyone who can reach the relay may watch", StringComparison.Ordinal));

        var defaults = Load("{}", out _)!;
        Assert.False(defaults.AnonymousViewing);
        Assert.False(defaults.Metrics.Public);
        Assert.Contains(RelayConfigLoader.Notes(defaults), n => n.Contains("nobody may watch", StringComparison.Ordinal));

        Assert.Null(Load("""
            { "anonymousViewing": "yes", "rtsps": "0.0.0.0:8322", "limits": { "rtspConnections": 0, "gopCacheMemory": "lots", "perDevice": 1 } }
            """, out problems));
        Assert.Contains("anonymousViewing: must be true or false", problems);
        Assert.Contains("limits.rtspConnections: must be a whole number from 1 to 100000", problems);
        Assert.Contains(problems, p => p.StartsWith("limits.gopCacheMemory: must be a size", StringComparison.Ordinal));
        Assert.Contains("limits.perDevice: unknown key", problems);
        Assert.Contains("rtsps: RTSP over TLS needs \"tls\" with a certificate and key", problems);
    }
}
