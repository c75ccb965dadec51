using Microsoft.AspNetCore.Http;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>relay.json keys for several relays (docs/scale-out.md) and which requests are redirected to a device's owner.</summary>
public class ScaleOutConfigTests
{
    private static RelayConfig? Load(string extra, out IReadOnlyList<string> problems) => RelayConfigLoader.Load($$"""
        { "http": "http://127.0.0.1:8080", "rtsp": "127.0.0.1:8554", "viewers": [ { "user": "alice", "password": "secret" } ], {{extra}} }
        """, Path.GetTempPath(), out problems);

    [Fact]
    public void Public_addresses_and_a_postgres_database_load()
    {
        var config = Load("""
            "database": "postgres://pinhole:pw@db.example:5432/fleet",
            "publicUrl": "https://relay1.example.com",
            "publicRtsp": "relay1.example.com:8554"
            """, out var problems);
        Assert.Empty(problems);
        Assert.NotNull(config);
        Assert.Equal(DatabaseKind.Postgres, config.Database.Kind);
        Assert.Equal(("https://relay1.example.com", "relay1.example.com:8554"), (config.PublicUrl, config.PublicRtsp));
        var v6 = Load("\"publicRtsp\": \"[2001:db8::1]:8554\", \"publicUrl\": \"http://[2001:db8::1]:8080/\"", out problems);
        Assert.Empty(problems);
        Assert.Equal("[2001:db8::1]:8554", v6!.PublicRtsp);
    }

    [Theory]
    [InlineData(""" "publicUrl": "relay1.example.com" """, "publicUrl: \"relay1.example.com\" must be http(s)://HOST[:PORT]")]
    [InlineData(""" "publicUrl": "https://relay1.example.com/pinhole" """, "publicUrl: \"https://relay1.example.com/pinhole\" must be")]
    [InlineData(""" "publicUrl": "https://u:p@relay1.example.com" """, "publicUrl: \"https://u:p@relay1.example.com\" must be")]
    [InlineData(""" "publicUrl": 5 """, "publicUrl: must be a string")]
    [InlineData(""" "publicRtsp": "relay1.example.com" """, "publicRtsp: \"relay1.example.com\" must be HOST:PORT")]
    [InlineData(""" "publicRtsp": "relay1.example.com:0" """, "publicRtsp: \"relay1.example.com:0\" must be HOST:PORT")]
    [InlineData(""" "publicRtsp": "rtsp://relay1.example.com:8554" """, "publicRtsp: \"rtsp://relay1.example.com:8554\" must be HOST:PORT")]
    [InlineData(""" "publicRtsp": "bad host:8554" """, "publicRtsp: \"bad host:8554\" must be HOST:PORT")]
    public void Bad_public_addresses_are_reported_with_their_key(string extra, string expected)
    {
        Assert.Null(Load(extra, out var problems));
        Assert.Contains(problems, p => p.StartsWith(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("GET", "/play/gw1/cam", "gw1")]
    [InlineData("GET", "/play/gw1/cam/ws", "gw1")]
    [InlineData("POST", "/whep/gw2/door", "gw2")]
    [InlineData("GET", "/devices/gw3/tunnels/ssh", "gw3")]
    [InlineData("GET", "/devices/gw3/ui/index.html", "gw3")]
    [InlineData("GET", "/api/devices/gw4", "gw4")]
    [InlineData("PUT", "/api/devices/gw4/config", null)]
    [InlineData("DELETE", "/api/devices/gw4", null)]
    [InlineData("GET", "/api/devices", null)]
    [InlineData("POST", "/login", null)]
    [InlineData("GET", "/", null)]
    [InlineData("GET", "/play/gw1", null)]
    public void Only_requests_that_need_the_live_uplink_are_about_a_device(string method, string path, string? device)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.Path = path;
        Assert.Equal(device, OwnerRedirects.DeviceOf(context.Request));
    }
}
