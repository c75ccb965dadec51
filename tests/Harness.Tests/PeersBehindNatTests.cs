using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

/// <summary>The peers run inside the NAT topology: a camera in the LAN, a broker on the WAN.</summary>
public class PeersBehindNatTests
{
    [RequiresFact(Needs.NetworkNamespaces | Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task Camera_in_the_lan_is_read_in_the_lan_and_unreachable_from_the_wan()
    {
        await using var nat = await NatTopology.CreateAsync();
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions
        {
            Width = 320, Height = 240, NetworkNamespace = nat.Lan, BindAddress = nat.LanAddress.ToString(),
        });
        Assert.StartsWith($"rtsp://{nat.LanAddress}:", camera.Url.ToString());

        var inLan = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 10, NetworkNamespace = nat.Lan });
        Assert.True(inLan.Succeeded, inLan.ToString());
        Assert.True(inLan.Video!.FramesDecoded >= 10, inLan.ToString());
        Assert.Empty(inLan.DecoderErrors);

        await nat.ExecCheckedAsync(nat.Wan, "ip", "route", "add", nat.LanSubnet, "via", nat.RouterWanAddress.ToString());
        var fromWan = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 0, NetworkNamespace = nat.Wan, Timeout = TimeSpan.FromSeconds(8) });
        Assert.False(fromWan.Succeeded, fromWan.ToString());
    }

    [RequiresFact(Needs.NetworkNamespaces | Needs.Mosquitto)]
    public async Task Lan_client_reaches_a_wan_broker_over_websocket_through_the_nat()
    {
        await using var nat = await NatTopology.CreateAsync();
        await using var broker = await MosquittoBroker.StartAsync(new MosquittoOptions
        {
            NetworkNamespace = nat.Wan, BindAddress = nat.WanAddress.ToString(),
        });
        Assert.Equal($"ws://{nat.WanAddress}:{broker.WebSocketPort}/mqtt", broker.WebSocketUrl.ToString());

        // mosquitto_pub from the LAN, through the NAT, over TCP.
        var pub = await nat.ExecAsync(nat.Lan, "mosquitto_pub",
            ["-h", nat.WanAddress.ToString(), "-p", broker.TcpPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "-q", "1", "-r", "-t", "pinhole/gw1/status", "-m", "online"]);
        Assert.True(pub.Succeeded, pub + "\n" + broker.Log);

        // A WebSocket client whose connection is opened inside the LAN namespace.
        using var lanHttp = NetworkNamespace.CreateHttpHandler(nat.Lan);
        using var invoker = new HttpMessageInvoker(lanHttp);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var (client, rc) = await RawMqttOverWebSocket.ConnectAsync(broker.WebSocketUrl, "lan-ws", ct: cts.Token, invoker: invoker);
        await using var _ = client;
        Assert.Equal(0, rc);
        await client.SubscribeAsync("pinhole/gw1/status", 1, cts.Token);
        Assert.Equal(("pinhole/gw1/status", "online", true), await client.ReceivePublishAsync(cts.Token));

        // The broker saw the client arrive from the router's WAN address, not the LAN address.
        Assert.Contains($"from {nat.RouterWanAddress}", broker.Log);
        Assert.DoesNotContain($"from {nat.LanAddress}", broker.Log);

        // And the harness's own helpers reach it inside its namespace.
        Assert.Equal(["pinhole/gw1/status online"], await broker.ReceiveAsync("pinhole/gw1/status", 1, TimeSpan.FromSeconds(5)));
    }
}
