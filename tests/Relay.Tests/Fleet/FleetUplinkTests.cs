using System.Net.WebSockets;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>The data channel on a real relay, driven by a hand-written device: resync on connect, pushes on change, v1 devices untouched.</summary>
public sealed class FleetUplinkTests : IAsyncLifetime
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-fleet-uplink-").FullName;
    private readonly ChangeOrigin _admin = new("token:test", "127.0.0.1");
    private RelayApp _relay = null!;

    public async Task InitializeAsync() => _relay = await RelayApp.StartAsync(new RelayConfig
    {
        Http = "http://127.0.0.1:0",
        Rtsp = "127.0.0.1:0",
        DataDir = _dir,
        Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
    });

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private FleetService Fleet => _relay.Services.GetRequiredService<FleetService>();

    private async Task<(UplinkWebSocket Link, Welcome Welcome)> ConnectAsync(UplinkCapabilities capabilities)
    {
        var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader(UplinkProtocol.DeviceHeader, "gw1");
        ws.Options.SetRequestHeader("Authorization", "Bearer a-long-random-secret");
        using var cts = new CancellationTokenSource(Wait);
        await ws.ConnectAsync(_relay.UplinkUri, cts.Token);
        var link = new UplinkWebSocket(ws);
        await link.SendAsync(new Hello(1, 1, capabilities, "test-device/1"), cts.Token);
        return (link, Assert.IsType<Welcome>(await link.ReceiveAsync(cts.Token)));
    }

    private static async Task<UplinkMessage?> NextNotHeartbeatAsync(UplinkWebSocket link, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (true)
            {
                var m = await link.ReceiveAsync(cts.Token);
                if (m is not (Ping or Ack)) return m;
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    [Fact]
    public async Task The_latest_revision_is_sent_on_connect_and_every_new_one_at_once_and_reports_are_stored()
    {
        await Fleet.PutConfigAsync("gw1", """{ "cameras": [] }""", _admin);
        await Fleet.PutConfigAsync("gw1", """{ "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ] }""", _admin);

        var (link, welcome) = await ConnectAsync(UplinkCapabilities.Media | UplinkCapabilities.Data);
        await using var connection = link;
        Assert.True(welcome.Capabilities.HasFlag(UplinkCapabilities.Data));
        var push = Assert.IsType<ConfigPush>(await NextNotHeartbeatAsync(link, Wait));
        Assert.Equal(2UL, push.Revision);
        Assert.Equal("""{"cameras":[{"name":"door","source":"rtsp://cam/1"}]}""", push.Document);

        await link.SendAsync(new ConfigReport(2, ConfigOutcome.Rejected, "cameras[0].source: nope"), CancellationToken.None);
        await link.SendAsync(new DeviceStatus("""{ "uptimeSeconds": 12.5, "revision": 1, "pipelines": [ { "name": "camera/door", "state": "running", "healthy": true } ] }"""), CancellationToken.None);
        await link.SendAsync(new DeviceStatus("not json at all"), CancellationToken.None); // ignored, not fatal
        var store = _relay.Services.GetRequiredService<IFleetStore>();
        // The relay handles the device's messages in order: once a heartbeat sent after them is answered, all three were handled.
        await link.SendAsync(new Ping(77), CancellationToken.None);
        Assert.Equal(new Pong(77), await NextNotHeartbeatAsync(link, Wait));
        var record = store.GetDeviceRecord("gw1")!;
        Assert.Equal((2L, "rejected", "cameras[0].source: nope"), (record.ReportedRevision!.Value, record.ReportedOutcome!, record.ReportedDetail!));
        Assert.Equal("test-device/1", record.Agent);
        Assert.Equal(12.5, Fleet.Live("gw1")!.Status!["uptimeSeconds"]!.GetValue<double>());

        var put = await Fleet.PutConfigAsync("gw1", """{ "cameras": [] }""", _admin);
        var next = Assert.IsType<ConfigPush>(await NextNotHeartbeatAsync(link, Wait));
        Assert.Equal((ulong)put.Revision, next.Revision);
        Assert.Equal(3UL, next.Revision);
    }

    [Fact]
    public async Task The_link_rate_in_a_status_document_shows_in_the_device_api_and_outlives_the_connection()
    {
        var token = ApiTokens.Create(_relay.Services.GetRequiredService<IFleetStore>(), "ci", DateTimeOffset.UtcNow);
        using var http = new HttpClient { BaseAddress = _relay.HttpUri };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        async Task<System.Text.Json.Nodes.JsonObject> DeviceAsync() =>
            (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(await http.GetStringAsync(new Uri("/api/devices/gw1", UriKind.Relative)))!;

        Assert.Null((await DeviceAsync())["linkBytesPerSecond"]);
        var (link, _) = await ConnectAsync(UplinkCapabilities.Media | UplinkCapabilities.Data);
        await using (link)
        {
            await link.SendAsync(new DeviceStatus("""{ "uptimeSeconds": 3, "revision": 0, "pipelines": [], "linkBytesPerSecond": 125000 }"""), CancellationToken.None);
            await link.SendAsync(new DeviceStatus("""{ "uptimeSeconds": 4, "revision": 0, "pipelines": [], "linkBytesPerSecond": -5 }"""), CancellationToken.None); // ignored
            await link.SendAsync(new Ping(78), CancellationToken.None);
            Assert.Equal(new Pong(78), await NextNotHeartbeatAsync(link, Wait));
            var online = await DeviceAsync();
            Assert.True(online["online"]!.GetValue<bool>());
            Assert.Equal(125000, online["linkBytesPerSecond"]!.GetValue<long>());
            Assert.NotNull(online["linkRateAt"]);

            await link.SendAsync(new DeviceStatus("""{ "uptimeSeconds": 14, "revision": 0, "pipelines": [], "linkBytesPerSecond": 31000 }"""), CancellationToken.None);
            await link.SendAsync(new Ping(79), CancellationToken.None);
            Assert.Equal(new Pong(79), await NextNotHeartbeatAsync(link, Wait));
            Assert.Equal(31000, (await DeviceAsync())["linkBytesPerSecond"]!.GetValue<long>());
        }
        // The last rate heard stays, with its time, once the device is gone.
        for (var i = 0; i < 200 && Fleet.Live("gw1") is not null; i++) await Task.Delay(25);
        var offline = await DeviceAsync();
        Assert.False(offline["online"]!.GetValue<bool>());
        Assert.Equal(31000, offline["linkBytesPerSecond"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_v1_device_that_does_not_offer_the_data_channel_gets_no_configuration_and_stays_connected()
    {
        await Fleet.PutConfigAsync("gw1", """{ "cameras": [] }""", _admin);

        var (link, welcome) = await ConnectAsync(UplinkCapabilities.Media | UplinkCapabilities.DropReports);
        await using var connection = link;
        Assert.Equal(UplinkCapabilities.Media | UplinkCapabilities.DropReports, welcome.Capabilities);
        // Listen without a deadline (cancelling a WebSocket receive aborts the connection) while a change is stored.
        var received = new List<UplinkMessage>();
        var listening = Task.Run(async () =>
        {
            while (await link.ReceiveAsync(CancellationToken.None) is { } m)
                lock (received) received.Add(m);
        });
        await Fleet.PutConfigAsync("gw1", """{ "sensors": [] }""", _admin);
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.True(_relay.Services.GetRequiredService<Pinhole.Relay.Uplink.UplinkSessionRegistry>().IsConnected("gw1"));
        Assert.False(listening.IsCompleted);
        lock (received) Assert.DoesNotContain(received, m => m.Channel == UplinkChannel.Data);
        link.Socket.Abort();
        await listening.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task A_report_on_a_data_channel_the_session_did_not_confirm_is_a_protocol_error()
    {
        var (link, _) = await ConnectAsync(UplinkCapabilities.Media);
        await using var connection = link;
        await link.SendAsync(new ConfigReport(1, ConfigOutcome.Applied, ""), CancellationToken.None);
        var bye = Assert.IsType<Goodbye>(await NextNotHeartbeatAsync(link, Wait));
        Assert.Equal(UplinkReason.ProtocolError, bye.Reason);
        Assert.Contains("did not confirm", bye.Text, StringComparison.Ordinal);
    }
}
