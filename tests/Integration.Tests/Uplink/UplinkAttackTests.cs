using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Pinhole.Testing;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>The /uplink endpoint under attack: token guessing, a device that floods cameras, hostile heartbeats.</summary>
public class UplinkAttackTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static HttpMessageInvoker From(string address) => new(LoopbackClient.Handler(address));

    private static async Task<(HttpStatusCode Status, ClientWebSocket Socket)> TryConnectAsync(TestRelay relay, string token, string from)
    {
        var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        ws.Options.SetRequestHeader(UplinkProtocol.DeviceHeader, "gw1");
        ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        using var invoker = From(from);
        using var cts = new CancellationTokenSource(Wait);
        try
        {
            await ws.ConnectAsync(relay.Uplink, invoker, cts.Token);
        }
        catch (WebSocketException)
        {
        }
        return (ws.HttpStatusCode, ws);
    }

    private static async Task<UplinkWebSocket> ConnectAsync(TestRelay relay)
    {
        var (status, ws) = await TryConnectAsync(relay, TestRelay.Devices["gw1"], "127.0.0.1");
        Assert.Equal(HttpStatusCode.SwitchingProtocols, status);
        var link = new UplinkWebSocket(ws);
        using var cts = new CancellationTokenSource(Wait);
        await link.SendAsync(new Hello(1, 1, UplinkCapabilities.Media | UplinkCapabilities.DropReports, "test"), cts.Token);
        Assert.IsType<Welcome>(await link.ReceiveAsync(cts.Token));
        return link;
    }

    // The session is alive when it answers a ping.
    private static async Task AssertAliveAsync(UplinkWebSocket link)
    {
        using var cts = new CancellationTokenSource(Wait);
        await link.SendAsync(new Ping(4242), cts.Token);
        while (true)
        {
            var m = await link.ReceiveAsync(cts.Token);
            Assert.NotNull(m);
            if (m is Pong { Timestamp: 4242 }) return;
        }
    }

    [Fact]
    public async Task Wrong_device_tokens_are_slowed_per_address_and_other_addresses_are_not()
    {
        await using var relay = await TestRelay.StartAsync(output);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 20; i++)
        {
            var (status, ws) = await TryConnectAsync(relay, "guess-" + i, "127.0.0.2");
            ws.Dispose();
            statuses.Add(status);
        }
        output.WriteLine(string.Join(" ", statuses.Select(s => (int)s)));
        // Before: all 20 checked and answered 401 at full speed. Now the address is locked after a few.
        Assert.Equal(HttpStatusCode.Unauthorized, statuses[0]);
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.True(statuses.Count(s => s == HttpStatusCode.Unauthorized) <= 10, "most guesses are not even checked");

        // The real device, elsewhere, connects at once.
        var (ok, socket) = await TryConnectAsync(relay, TestRelay.Devices["gw1"], "127.0.0.3");
        socket.Dispose();
        Assert.Equal(HttpStatusCode.SwitchingProtocols, ok);
        Assert.Single(relay.Log.Lines, l => l.Contains("refused uplink-token-throttled from 127.0.0.2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_pong_from_the_future_does_not_end_the_session()
    {
        await using var relay = await TestRelay.StartAsync(output);
        await using var link = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        // Before: ulong now - future wrapped, and TimeSpan.FromMicroseconds threw: the session died.
        await link.SendAsync(new Pong(ulong.MaxValue), cts.Token);
        await link.SendAsync(new Pong(ulong.MaxValue / 2), cts.Token);
        await AssertAliveAsync(link);
        Assert.DoesNotContain(relay.Log.Lines, l => l.Contains(" Error ", StringComparison.Ordinal) || l.Contains(" Critical ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_device_that_announces_camera_after_camera_gets_only_its_allowance()
    {
        await using var relay = await TestRelay.StartAsync(output);
        await using var link = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        var limit = relay.Streams.Limits.MaxCamerasPerDevice;
        for (ushort id = 1; id <= limit + 20; id++)
            await link.SendAsync(new StreamAnnounce(id, "cam" + id, [FakeCamera.Track]), cts.Token);
        // Frames of a refused camera are dropped without ending the session.
        await link.SendAsync(new MediaFrame(1, (ushort)(limit + 5), 0, new AccessUnit(0, 0, 0, true, new byte[] { 0, 0, 0, 1, 0x65 })), cts.Token);
        await AssertAliveAsync(link);
        Assert.Equal(limit, relay.Streams.CamerasOf("gw1"));
        Assert.Contains("pinhole_relay_refusals_total{cause=\"cameras-per-device\"} 20", relay.Metrics.Render(), StringComparison.Ordinal);
        Assert.Single(relay.Log.Lines, l => l.Contains("refused cameras-per-device from gw1", StringComparison.Ordinal));
    }
}
