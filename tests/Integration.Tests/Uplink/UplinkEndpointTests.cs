using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>The relay's /uplink endpoint against a hand-driven protocol client.</summary>
public class UplinkEndpointTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static ClientWebSocket NewSocket(string? device, string? token, string? versions = "1")
    {
        var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (device is not null) ws.Options.SetRequestHeader(UplinkProtocol.DeviceHeader, device);
        if (token is not null) ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        if (versions is not null) ws.Options.SetRequestHeader(UplinkProtocol.VersionHeader, versions);
        return ws;
    }

    private static async Task<UplinkWebSocket> ConnectAsync(TestRelay relay, string device = "gw1", string? token = null)
    {
        var ws = NewSocket(device, token ?? TestRelay.Devices[device]);
        using var cts = new CancellationTokenSource(Wait);
        await ws.ConnectAsync(relay.Uplink, cts.Token);
        var link = new UplinkWebSocket(ws);
        await link.SendAsync(new Hello(1, 1, UplinkCapabilities.Media | UplinkCapabilities.DropReports, "test"), cts.Token);
        Assert.IsType<Welcome>(await link.ReceiveAsync(cts.Token));
        return link;
    }

    private static async Task<UplinkMessage?> ReceiveSkippingAsync(UplinkWebSocket link, Func<UplinkMessage, bool> skip, CancellationToken ct)
    {
        while (true)
        {
            var m = await link.ReceiveAsync(ct);
            if (m is null || !skip(m)) return m;
        }
    }

    [Theory]
    [InlineData("gw1", "wrong-token", "unauthorized")]
    [InlineData("no-such-device", "secret-gw1", "unauthorized")]
    [InlineData(null, "secret-gw1", "unauthorized")]
    [InlineData("gw1", null, "unauthorized")]
    public async Task Bad_credentials_are_refused_with_401_before_the_upgrade(string? device, string? token, string reason)
    {
        await using var relay = await TestRelay.StartAsync(output);
        using var ws = NewSocket(device, token);

        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(relay.Uplink, CancellationToken.None));

        Assert.Equal(HttpStatusCode.Unauthorized, ws.HttpStatusCode);
        Assert.Equal(reason, ws.HttpResponseHeaders![UplinkProtocol.RejectHeader].Single());
        Assert.Equal(0, relay.Sessions.Count);
        Assert.Contains($"pinhole_uplink_rejects_total{{reason=\"{reason}\"}} 1", relay.Metrics.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unsupported_version_header_is_refused_with_400_before_the_upgrade()
    {
        await using var relay = await TestRelay.StartAsync(output);
        using var ws = NewSocket("gw1", "secret-gw1", versions: "2, 3");
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(relay.Uplink, CancellationToken.None));
        Assert.Equal(HttpStatusCode.BadRequest, ws.HttpStatusCode);
        Assert.Equal("unsupported-version", ws.HttpResponseHeaders![UplinkProtocol.RejectHeader].Single());
    }

    [Fact]
    public async Task Plain_http_request_gets_a_clear_400()
    {
        await using var relay = await TestRelay.StartAsync(output);
        using var http = new HttpClient();
        var response = await http.GetAsync(new Uri($"http://127.0.0.1:{relay.Port}/uplink"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("WebSocket", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unsupported_version_in_hello_gets_a_reject_message_then_close()
    {
        await using var relay = await TestRelay.StartAsync(output);
        var ws = NewSocket("gw1", "secret-gw1", versions: null);
        await ws.ConnectAsync(relay.Uplink, CancellationToken.None);
        await using var link = new UplinkWebSocket(ws);
        using var cts = new CancellationTokenSource(Wait);
        await link.SendAsync(new Hello(2, 3, UplinkCapabilities.Media, "future-edge"), cts.Token);

        var reject = Assert.IsType<Reject>(await link.ReceiveAsync(cts.Token));
        Assert.Equal(UplinkReason.UnsupportedVersion, reject.Reason);
        Assert.Contains("2-3", reject.Text, StringComparison.Ordinal);
        Assert.Null(await link.ReceiveAsync(cts.Token));
        Assert.Equal(0, relay.Sessions.Count);
    }

    [Fact]
    public async Task Frames_reach_the_stream_in_order_and_acks_are_merged()
    {
        await using var relay = await TestRelay.StartAsync(output, o => o.AckInterval = TimeSpan.FromMilliseconds(100));
        await using var link = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await using var recorder = new StreamRecorder(stream);

        await link.SendAsync(new StreamAnnounce(7, "cam", [FakeCamera.Track]), cts.Token);
        long sentBytes = 0;
        for (var i = 0; i < 200; i++)
        {
            var unit = new AccessUnit(0, i * 3600, i * 3600, i % 25 == 0, FakeCamera.Payload(i, key: i % 25 == 0));
            sentBytes += await link.SendFrameAsync((ulong)i + 1, 7, 1000 + (ulong)i, unit, cts.Token);
        }
        var clock = Stopwatch.StartNew();
        var acks = new List<Ack>();
        while (acks.Count == 0 || acks[^1].Sequence < 200)
            acks.Add(Assert.IsType<Ack>(await ReceiveSkippingAsync(link, m => m is Ping, cts.Token)));

        Assert.True(acks.Count <= 5, $"{acks.Count} acks for 200 frames sent in a burst: not merged");
        Assert.Equal(1199UL, acks[^1].EchoTimestamp);
        // Whole media-channel messages, the announce included, as the device counts them.
        Assert.Equal((ulong)link.MediaBytesSent, acks[^1].BytesReceived);
        Assert.True(link.MediaBytesSent > sentBytes);
        await WaitUntilAsync(() => stream.FramesIn == 200, "200 frames at the stream");
        // A viewer reading behind an 8 s burst may skip to a keyframe (its own bounded queue), even in
        // the last GOP, so it need not see frame 199; it never reorders or repeats. Wait until it has
        // drained what it kept (quiet for half a second), then check that.
        var quiet = Stopwatch.StartNew();
        var count = -1;
        while (quiet.Elapsed < TimeSpan.FromMilliseconds(500))
        {
            if (recorder.Frames.Count != count) { count = recorder.Frames.Count; quiet.Restart(); }
            Assert.True(clock.Elapsed < Wait, "the viewer kept receiving frames");
            await Task.Delay(50);
        }
        var frames = recorder.Frames;
        Assert.NotEmpty(frames);
        var seen = frames.Select(f => f.Index).ToList();
        Assert.Equal(seen.Order(), seen);
        Assert.Equal(seen.Distinct().Count(), seen.Count);
        for (var k = 1; k < frames.Count; k++)
            Assert.True(frames[k].Key || frames[k].Index == frames[k - 1].Index + 1, $"frame {frames[k].Index} after {frames[k - 1].Index}: a skip must land on a keyframe");
        Assert.Equal(FakeCamera.Track, stream.Tracks![0]);
        Assert.True(stream.IsOnline);
        output.WriteLine($"{acks.Count} acks in {clock.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task A_new_uplink_replaces_the_old_one_which_is_told_and_closed()
    {
        await using var relay = await TestRelay.StartAsync(output);
        await using var first = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        await first.SendAsync(new StreamAnnounce(1, "cam", [FakeCamera.Track]), cts.Token);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await WaitUntilAsync(() => stream.IsOnline, "stream online");

        await using var second = await ConnectAsync(relay);

        var bye = Assert.IsType<Goodbye>(await ReceiveSkippingAsync(first, m => m is Ping or Ack, cts.Token));
        Assert.Equal(UplinkReason.Replaced, bye.Reason);
        Assert.Null(await first.ReceiveAsync(cts.Token));
        Assert.Equal(1, relay.Sessions.Count);
        // The old session ending must not mark the device offline under the new one.
        await second.SendAsync(new StreamAnnounce(1, "cam", [FakeCamera.Track]), cts.Token);
        await second.SendFrameAsync(1, 1, 1, new AccessUnit(0, 0, 0, true, new byte[] { 0, 0, 0, 1, 0x65, 0, 0, 0, 0 }), cts.Token);
        await WaitUntilAsync(() => stream.FramesIn == 1, "frame over the new uplink");
        Assert.True(stream.IsOnline);
        Assert.True(relay.Sessions.IsConnected("gw1"));
    }

    [Fact]
    public async Task Device_goes_offline_when_its_uplink_closes()
    {
        await using var relay = await TestRelay.StartAsync(output);
        var link = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        await link.SendAsync(new StreamAnnounce(1, "cam", [FakeCamera.Track]), cts.Token);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await WaitUntilAsync(() => stream.IsOnline, "stream online");

        await link.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token);
        await link.DisposeAsync();

        await WaitUntilAsync(() => !stream.IsOnline && relay.Sessions.Count == 0, "device offline");
    }

    [Fact]
    public async Task Silent_device_is_detected_dead_within_the_heartbeat_window()
    {
        await using var relay = await TestRelay.StartAsync(output, o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            o.DeadLinkTimeout = TimeSpan.FromMilliseconds(800);
        });
        await using var link = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        await link.SendAsync(new StreamAnnounce(1, "cam", [FakeCamera.Track]), cts.Token);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await WaitUntilAsync(() => stream.IsOnline, "stream online");
        var clock = Stopwatch.StartNew();

        // Read (the relay's pings arrive) but never answer or send anything. Time the moment the relay
        // declares the link dead (its counter), not the close handshake with a peer that never answers.
        await WaitUntilAsync(() => relay.Metrics.Render().Contains("pinhole_uplink_dead_links_total{} 1", StringComparison.Ordinal), "dead link detected");
        var detected = clock.Elapsed;
        await WaitUntilAsync(() => relay.Sessions.Count == 0, "dead session removed");

        output.WriteLine($"dead link detected after {detected.TotalMilliseconds:0} ms");
        // 800 ms timeout plus generous scheduling slack for a loaded 2-core machine (relay and test
        // share one process); a missed heartbeat check would leave the session open for minutes.
        Assert.InRange(detected, TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(2800));
        Assert.False(stream.IsOnline);
        Assert.Contains("pinhole_uplink_dead_links_total{} 1", relay.Metrics.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Malformed_frames_end_the_session_with_a_reason_and_the_relay_keeps_serving()
    {
        await using var relay = await TestRelay.StartAsync(output, o => o.Limits = new UplinkLimits { MaxMessageBytes = 10_000 });
        using var cts = new CancellationTokenSource(Wait);

        await using (var link = await ConnectAsync(relay))
        {
            await link.SendFrameAsync(1, 9, 1, new AccessUnit(0, 0, 0, true, new byte[10]), cts.Token); // stream 9 never announced
            var bye = Assert.IsType<Goodbye>(await ReceiveSkippingAsync(link, m => m is Ping or Ack, cts.Token));
            Assert.Equal(UplinkReason.ProtocolError, bye.Reason);
            Assert.Contains("never announced", bye.Text, StringComparison.Ordinal);
        }

        await using (var link = await ConnectAsync(relay))
        {
            await link.SendAsync(new StreamAnnounce(1, "cam", [FakeCamera.Track]), cts.Token);
            // Header claims 20 000 bytes: refused from the header, before the body is buffered.
            var header = new byte[UplinkProtocol.HeaderSize];
            header[0] = 1; header[1] = 2;
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(2), 20_000);
            await link.Socket.SendAsync(header, WebSocketMessageType.Binary, false, cts.Token);
            var bye = Assert.IsType<Goodbye>(await ReceiveSkippingAsync(link, m => m is Ping or Ack, cts.Token));
            Assert.Equal(UplinkReason.MessageTooLarge, bye.Reason);
        }

        await using (var link = await ConnectAsync(relay))
        {
            await link.Socket.SendAsync("hello"u8.ToArray(), WebSocketMessageType.Text, true, cts.Token);
            var bye = Assert.IsType<Goodbye>(await ReceiveSkippingAsync(link, m => m is Ping or Ack, cts.Token));
            Assert.Equal(UplinkReason.ProtocolError, bye.Reason);
            Assert.Contains("text WebSocket message", bye.Text, StringComparison.Ordinal);
        }

        await using (var link = await ConnectAsync(relay))
        {
            // The header announces an 8-byte ping body; the WebSocket message ends after 4.
            await link.Socket.SendAsync(new byte[] { 0, 5, 0, 0, 0, 8, 1, 2, 3, 4 }, WebSocketMessageType.Binary, true, cts.Token);
            var bye = Assert.IsType<Goodbye>(await ReceiveSkippingAsync(link, m => m is Ping or Ack, cts.Token));
            Assert.Equal(UplinkReason.ProtocolError, bye.Reason);
            Assert.Contains("header announced 14", bye.Text, StringComparison.Ordinal);
        }

        await using var healthy = await ConnectAsync(relay);
        Assert.True(relay.Sessions.IsConnected("gw1"));
        Assert.Contains("pinhole_uplink_protocol_errors_total{reason=\"protocol-error\"} 3", relay.Metrics.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Device_drop_reports_become_relay_metrics()
    {
        await using var relay = await TestRelay.StartAsync(output);
        await using var link = await ConnectAsync(relay);
        using var cts = new CancellationTokenSource(Wait);
        await link.SendAsync(new StreamAnnounce(3, "door", [FakeCamera.Track]), cts.Token);
        await link.SendAsync(new DropReport(3, 10, 5000), cts.Token);
        await link.SendAsync(new DropReport(3, 25, 9000), cts.Token);
        await link.SendAsync(new Ping(1), cts.Token);
        Assert.IsType<Pong>(await ReceiveSkippingAsync(link, m => m is Ping, cts.Token));
        Assert.Contains("pinhole_uplink_device_drops_total{camera=\"door\",device=\"gw1\"} 25", relay.Metrics.Render(), StringComparison.Ordinal);

        // After a reconnect the device repeats its totals: only the growth counts.
        await link.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token);
        await using var again = await ConnectAsync(relay);
        await again.SendAsync(new StreamAnnounce(0, "door", [FakeCamera.Track]), cts.Token);
        await again.SendAsync(new DropReport(0, 30, 9500), cts.Token);
        await again.SendAsync(new Ping(2), cts.Token);
        Assert.IsType<Pong>(await ReceiveSkippingAsync(again, m => m is Ping, cts.Token));
        Assert.Contains("pinhole_uplink_device_drops_total{camera=\"door\",device=\"gw1\"} 30", relay.Metrics.Render(), StringComparison.Ordinal);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Wait) throw new TimeoutException($"{what} did not happen within {Wait.TotalSeconds} s");
            await Task.Delay(10);
        }
    }
}
