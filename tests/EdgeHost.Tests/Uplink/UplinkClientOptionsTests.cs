using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Uplink;

namespace Pinhole.EdgeHost.Tests.Uplink;

public class UplinkClientOptionsTests
{
    private static EdgeConfig Config(params string[] relays) => new() { DeviceId = "gw1", Token = "t0ken", Relays = [.. relays] };

    [Fact]
    public void Builds_from_edge_json_with_defaults_from_the_design()
    {
        var options = UplinkClientOptions.FromConfig(Config("wss://relay.example.com/uplink", "ws://10.0.0.1:8080/uplink") );
        Assert.Equal(2, options.Relays.Count);
        Assert.Equal(TimeSpan.FromSeconds(10), options.HeartbeatInterval);
        Assert.Equal(TimeSpan.FromSeconds(30), options.DeadLinkTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2), options.QueueDuration);
        Assert.Null(options.TrustedCa);
        Assert.Null(options.Proxy);
    }

    [Theory]
    [InlineData("https://relay.example.com/uplink", "not a wss://")]
    [InlineData("relay.example.com", "not a wss://")]
    [InlineData("wss://gw1:secret@relay.example.com/uplink", "credentials do not belong in the URL")]
    [InlineData("wss://relay.example.com/uplink?token=abc", "credentials do not belong in the URL")]
    public void Refuses_bad_relay_urls_with_the_reason(string relay, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => UplinkClientOptions.FromConfig(Config(relay)));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_missing_identity_relays_and_unreadable_ca()
    {
        Assert.Contains("deviceId", Assert.Throws<ArgumentException>(() => UplinkClientOptions.FromConfig(new EdgeConfig { Token = "t", Relays = ["wss://r/uplink"] })).Message, StringComparison.Ordinal);
        Assert.Contains("token", Assert.Throws<ArgumentException>(() => UplinkClientOptions.FromConfig(new EdgeConfig { DeviceId = "gw1", Relays = ["wss://r/uplink"] })).Message, StringComparison.Ordinal);
        Assert.Contains("relays", Assert.Throws<ArgumentException>(() => UplinkClientOptions.FromConfig(Config())).Message, StringComparison.Ordinal);
        var config = Config("wss://r/uplink");
        config.TrustedCa = "/nonexistent/ca.crt";
        Assert.Contains("trustedCa", Assert.Throws<ArgumentException>(() => UplinkClientOptions.FromConfig(config)).Message, StringComparison.Ordinal);
        var empty = Path.GetTempFileName();
        try
        {
            config.TrustedCa = empty;
            Assert.Contains("no PEM certificate", Assert.Throws<ArgumentException>(() => UplinkClientOptions.FromConfig(config)).Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(empty);
        }
    }
}
