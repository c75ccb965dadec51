using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtsp;

/// <summary>
/// Lower-transport fallback (issue #21) and RTCP BYE against a scripted camera. The 461 answer and
/// the BYE bytes are the ones GStreamer's RTSP server and VLC's RTSP output really send (see
/// docs/rtsp.md, interop matrix).
/// </summary>
public class RtspClientTransportTests
{
    /// <summary>GStreamer 1.22 (rtpbin on EOS): a BYE naming its stream's SSRC, no reason.</summary>
    private static readonly byte[] GStreamerBye = Convert.FromHexString("81cb0001b9ce3dfd");

    /// <summary>VLC 3.0 (stream_out_rtp at the end of its input): a BYE naming SSRC 0, not its stream's.</summary>
    private static readonly byte[] VlcBye = Convert.FromHexString("81cb000100000000");

    private sealed class Holder { public FakeRtspServer? Server; }

    private static RtspResponse Ok(string? transport = null)
    {
        var r = new RtspResponse(200, "OK");
        r.Headers.Add("Session", "sess1;timeout=60");
        if (transport is not null) r.Headers.Add("Transport", transport);
        return r;
    }

    /// <summary>A camera that answers SETUP with <paramref name="setup"/>(the client's transport, the server).</summary>
    private static FakeRtspServer Camera(string capture, Func<RtspTransport, FakeRtspServer, RtspResponse> setup, bool sendUdpMedia = true)
    {
        var h = new Holder();
        h.Server = new FakeRtspServer(req =>
        {
            switch (req.Method)
            {
                case "OPTIONS":
                    var o = new RtspResponse(200, "OK");
                    o.Headers.Add("Public", "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER");
                    return o;
                case "DESCRIBE":
                    return h.Server!.DescribeFrom(capture);
                case "SETUP":
                    return setup(RtspTransport.ParseList(req.Headers["Transport"]!)[0], h.Server!);
                default:
                    return Ok();
            }
        }, capture) { SendUdpMedia = sendUdpMedia };
        return h.Server;
    }

    private static RtspResponse UdpAnswer(RtspTransport asked, FakeRtspServer server) =>
        Ok($"RTP/AVP;unicast;client_port={asked.ClientPort};server_port={server.UdpPorts};ssrc=B9CE3DFD");

    /// <summary>VLC's and many cheap cameras' answer to a TCP-interleaved SETUP.</summary>
    private static RtspResponse UdpOnly(RtspTransport asked, FakeRtspServer server) =>
        asked.IsTcp ? new RtspResponse(461, "Unsupported transport") : UdpAnswer(asked, server);

    private static RtspResponse TcpAndUdp(RtspTransport asked, FakeRtspServer server) =>
        asked.IsTcp ? Ok(asked.ToString()) : UdpAnswer(asked, server);

    private static readonly RtspClientOptions Auto = new() { Transport = RtspLowerTransport.Tcp, TransportFallback = true, ReceiverReportInterval = TimeSpan.FromMilliseconds(300) };

    private static List<string> Setups(FakeRtspServer server) =>
        server.Requests.Where(r => r.Method == "SETUP").Select(r => RtspTransport.ParseList(r.Headers["Transport"]!)[0].IsTcp ? "TCP" : "UDP").ToList();

    /// <summary>Plays until <paramref name="enough"/> or 10 s, then stops; returns the sink.</summary>
    private static async Task<RecordingSink> PlayUntilAsync(RtspClient client, Func<RecordingSink, bool> enough)
    {
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var run = client.RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.WaitAsync(enough), run, Task.Delay(TimeSpan.FromSeconds(10)));
        await cts.CancelAsync();
        await run; // surfaces a failure
        Assert.True(enough(sink), "not enough media within 10 s");
        Assert.Empty(sink.Errors);
        return sink;
    }

    [Fact]
    public async Task Auto_mode_plays_over_UDP_when_the_camera_answers_461_to_TCP_and_reports_to_the_server_port()
    {
        await using var server = Camera("pcma", UdpOnly);
        var client = new RtspClient(new Uri(server.Url()), Auto);
        await PlayUntilAsync(client, s => s.Count(0) >= 10 && !server.ClientUdpRtcp.IsEmpty);

        Assert.Equal(RtspLowerTransport.Udp, client.PlayedTransport);
        Assert.Equal(["TCP", "UDP"], Setups(server));
        // Nothing was set up by the refused SETUP: the UDP one follows on the same connection.
        Assert.Single(server.Requests, r => r.Method == "DESCRIBE");
        Assert.Equal(1, server.Connections);
        // RTCP receiver reports reach the server's RTCP port (RFC 3550 §6.2) and name the camera's stream.
        var senderSsrc = RtpPacket.Parse(Captures.Stream("pcma").Frames.First(f => f.Channel == 0).Payload).Ssrc;
        var rr = server.ClientUdpRtcp.SelectMany(b => RtcpPacket.ParseCompound(b)).First();
        Assert.Equal(RtcpPacket.ReceiverReportType, rr.PacketType);
        Assert.Equal(senderSsrc, Assert.Single(rr.Reports).Ssrc);
    }

    [Fact]
    public async Task Auto_mode_plays_over_UDP_when_a_TCP_SETUP_is_answered_with_UDP()
    {
        // Some cameras ignore interleaved= and answer with the transport they prefer (RFC 2326 §12.39).
        await using var server = Camera("pcma", (asked, s) => asked.IsTcp
            ? Ok($"RTP/AVP;unicast;client_port=5000-5001;server_port={s.UdpPorts}")
            : UdpAnswer(asked, s));
        var client = new RtspClient(new Uri(server.Url()), Auto);
        await PlayUntilAsync(client, s => s.Count(0) >= 10);

        Assert.Equal(RtspLowerTransport.Udp, client.PlayedTransport);
        Assert.Equal(["TCP", "UDP"], Setups(server));
        // That answer made a session on the camera: it is torn down and UDP starts on a new connection.
        Assert.Equal(["OPTIONS", "DESCRIBE", "SETUP", "TEARDOWN", "OPTIONS", "DESCRIBE", "SETUP", "PLAY"], server.Requests.Select(r => r.Method).Take(8));
        Assert.Equal(2, server.Connections);
    }

    [Fact]
    public async Task Auto_mode_goes_back_to_TCP_when_UDP_delivers_nothing()
    {
        // UDP tried first (as after it once worked), but a firewall now drops it: no datagram arrives.
        await using var server = Camera("pcma", TcpAndUdp, sendUdpMedia: false);
        var client = new RtspClient(new Uri(server.Url()), Auto with { Transport = RtspLowerTransport.Udp, UdpFirstPacketTimeout = TimeSpan.FromSeconds(1) });
        var sw = Stopwatch.StartNew();
        var sink = await PlayUntilAsync(client, s => s.Count(0) >= 10);

        Assert.Equal(RtspLowerTransport.Tcp, client.PlayedTransport);
        Assert.Equal(["UDP", "TCP"], Setups(server));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), sw.Elapsed.ToString());
        // The silent UDP session was torn down before the TCP one was set up.
        var methods = server.Requests.Select(r => r.Method).ToList();
        Assert.True(methods.IndexOf("TEARDOWN") is var t && t > 0 && t < methods.LastIndexOf("SETUP"), string.Join(",", methods));
        Assert.Single(sink.TrackAnnouncements);
    }

    [Fact]
    public async Task Auto_mode_fails_clearly_when_TCP_is_refused_and_UDP_stays_silent()
    {
        await using var server = Camera("pcma", UdpOnly, sendUdpMedia: false);
        var client = new RtspClient(new Uri(server.Url()), Auto with { UdpFirstPacketTimeout = TimeSpan.FromSeconds(1) });
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RtspClientException>(() => client.RunAsync(new RecordingSink(), CancellationToken.None));

        Assert.Contains("no RTP over UDP within 1 s of PLAY", e.Message, StringComparison.Ordinal);
        Assert.Contains("TCP: SETUP refused: 461", e.Message, StringComparison.Ordinal);
        Assert.Equal(["TCP", "UDP"], Setups(server)); // no third attempt: the supervisor's backoff decides when
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), sw.Elapsed.ToString());
    }

    [Fact]
    public async Task Tcp_mode_does_not_fall_back_and_fails_with_461()
    {
        await using var server = Camera("pcma", UdpOnly);
        var client = new RtspClient(new Uri(server.Url()), new RtspClientOptions { Transport = RtspLowerTransport.Tcp });
        var e = await Assert.ThrowsAsync<RtspClientException>(() => client.RunAsync(new RecordingSink(), CancellationToken.None));

        Assert.Equal(461, e.StatusCode);
        Assert.Contains("SETUP failed: 461", e.Message, StringComparison.Ordinal);
        Assert.Equal(["TCP"], Setups(server));
        Assert.Null(client.PlayedTransport);
    }

    [Fact]
    public async Task Udp_mode_does_not_fall_back_to_TCP()
    {
        await using var server = Camera("pcma", (asked, s) => asked.IsTcp ? Ok(asked.ToString()) : new RtspResponse(461, "Unsupported transport"));
        var client = new RtspClient(new Uri(server.Url()), new RtspClientOptions { Transport = RtspLowerTransport.Udp });
        var e = await Assert.ThrowsAsync<RtspClientException>(() => client.RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Equal(461, e.StatusCode);
        Assert.Equal(["UDP"], Setups(server));
    }

    [Fact]
    public async Task Rtcp_BYE_on_the_interleaved_RTCP_channel_ends_the_session_at_once()
    {
        await using var server = Camera("pcma", TcpAndUdp);
        var client = new RtspClient(new Uri(server.Url()), Auto);
        var sink = new RecordingSink();
        var run = client.RunAsync(sink, CancellationToken.None);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 5), run).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(run.IsCompleted, "the session ended before the BYE");

        var sw = Stopwatch.StartNew();
        await server.SendRtcpAsync(0, GStreamerBye);
        var e = await Assert.ThrowsAsync<RtspClientException>(() => run.WaitAsync(TimeSpan.FromSeconds(5)));

        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1), sw.Elapsed.ToString());
        Assert.Contains("the camera ended the stream (RTCP BYE)", e.Message, StringComparison.Ordinal);
        Assert.StartsWith(server.Url(), e.Message, StringComparison.Ordinal);
        Assert.Equal("TEARDOWN", server.Requests.Last().Method); // the camera frees the session now, not at its timeout
    }

    [Fact]
    public async Task Rtcp_BYE_over_UDP_from_the_camera_ends_the_session_and_one_from_another_address_does_not()
    {
        await using var server = Camera("pcma", UdpOnly);
        var client = new RtspClient(new Uri(server.Url()), Auto);
        var sink = new RecordingSink();
        var run = client.RunAsync(sink, CancellationToken.None);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 5), run).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(run.IsCompleted, "the session ended before the BYE");
        Assert.Equal(RtspLowerTransport.Udp, client.PlayedTransport);

        // Anyone on the LAN can send to the client's RTCP port; only the camera's address counts.
        // (127.0.0.2 is loopback too: nothing leaves the machine.)
        var clientRtcpPort = RtspTransport.ParseList(server.Requests.Last(r => r.Method == "SETUP").Headers["Transport"]!)[0].ClientPort!.Value.Second;
        using (var spoofer = new UdpClient(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0)))
        {
            for (var i = 0; i < 3; i++) await spoofer.SendAsync(VlcBye, new IPEndPoint(IPAddress.Loopback, clientRtcpPort));
        }
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.False(run.IsCompleted, "a BYE from another address ended the session");

        // The camera's own BYE, as VLC sends it (SSRC 0, not the stream's): the session ends at once.
        var sw = Stopwatch.StartNew();
        await server.SendRtcpAsync(0, VlcBye);
        var e = await Assert.ThrowsAsync<RtspClientException>(() => run.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(1), sw.Elapsed.ToString());
        Assert.Contains("the camera ended the stream (RTCP BYE)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sender_reports_do_not_end_the_session()
    {
        // The capture's own RTCP (SR + SDES on channel 1) flows throughout; only a BYE ends the session.
        await using var server = Camera("h264-aac", TcpAndUdp);
        var client = new RtspClient(new Uri(server.Url()), Auto);
        var sink = await PlayUntilAsync(client, s => s.Count(0) >= 40);
        Assert.Contains(Captures.Stream("h264-aac").Frames, f => f.Channel % 2 == 1);
        Assert.True(sink.Count(0) >= 40);
    }
}
