using System.Text;
using Pinhole.Testing.Media;
using Pinhole.Streaming.Rtsp;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>The shared RTSP server taking a published stream: ANNOUNCE, SETUP (TCP interleaved, record), RECORD,
/// interleaved RTP in, access units out to the publication; and every way a publisher is refused.</summary>
public class RtspPublishTests
{
    private sealed class FakePublication : IRtspPublication
    {
        private readonly CancellationTokenSource _ended = new();
        public List<IReadOnlyList<TrackInfo>> Tracks { get; } = [];
        public List<AccessUnit> Units { get; } = [];
        public bool Disposed { get; private set; }
        public CancellationToken Ended => _ended.Token;
        public void End() => _ended.Cancel();
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { lock (Units) Tracks.Add(tracks); }
        public void OnAccessUnit(in AccessUnit unit) { lock (Units) Units.Add(unit); }
        public int Count { get { lock (Units) return Units.Count; } }
        public void Dispose() => Disposed = true;
    }

    private sealed class FakeHandler : IRtspPublishHandler
    {
        public RtspPublishDecision Decision { get; set; } = RtspPublishDecision.Accept;
        public FakePublication? Publication { get; private set; }
        public string? User { get; private set; }
        public bool IsPublishPath(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries) is [_, "in", _];
        public RtspPublishDecision Check(string? user, string path) => Decision;
        public IRtspPublication? Start(string? user, string path, out RtspPublishDecision refusal)
        {
            refusal = Decision;
            if (!Decision.IsAccepted) return null;
            User = user;
            return Publication = new FakePublication();
        }
    }

    private static async Task<(RtspHarness Harness, FakeHandler Handler, RawRtspClient Client)> StartAsync()
    {
        var handler = new FakeHandler();
        var h = await RtspHarness.StartAsync(publishing: handler);
        var c = await RawRtspClient.ConnectAsync(h.Port);
        c.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
        return (h, handler, c);
    }

    private static ReadOnlyMemory<byte> Utf8(string s) => Encoding.UTF8.GetBytes(s);

    private static readonly (string, string) SdpType = ("Content-Type", "application/sdp");

    [Fact]
    public async Task A_published_h264_and_aac_stream_reaches_the_publication_as_access_units()
    {
        var clip = TestClips.H264(seconds: 2, withAudio: true, width: 320, height: 240);
        var (h, handler, c) = await StartAsync();
        await using var _ = h;
        await using var __ = c;
        var url = $"rtsp://127.0.0.1:{h.Port}/gw1/in/lobby";
        var description = SdpWriter.Build(clip.Tracks);

        Assert.Equal(200, (await c.RequestAsync("ANNOUNCE", url, Utf8(description.ToString()), SdpType)).StatusCode);
        for (var i = 0; i < clip.Tracks.Count; i++)
        {
            var setup = await c.RequestAsync("SETUP", $"{url}/{SdpWriter.TrackControl(i)}", ("Transport", $"RTP/AVP/TCP;unicast;interleaved={2 * i}-{2 * i + 1};mode=record"));
            Assert.Equal(200, setup.StatusCode);
            Assert.Contains($"interleaved={2 * i}-{2 * i + 1}", setup.Headers["Transport"]);
        }
        Assert.Equal(200, (await c.RequestAsync("RECORD", url)).StatusCode);
        Assert.Equal(RtspHarness.User, handler.User);

        // Packetize the clip as a publisher would and send it interleaved.
        var packetizers = clip.Tracks.Select((t, i) => RtpPacketizerFactory.Create(t, (byte)description.Media[i].PayloadType, new RtpPacketizerOptions())).ToArray();
        var wire = new MemoryStream();
        foreach (var unit in clip.Units)
        {
            packetizers[unit.Track].Packetize(unit, packet =>
            {
                wire.WriteByte((byte)'$');
                wire.WriteByte((byte)(2 * unit.Track));
                wire.WriteByte((byte)(packet.Length >> 8));
                wire.WriteByte((byte)packet.Length);
                wire.Write(packet);
            });
        }
        await c.SendRawAsync(wire.ToArray());

        var publication = handler.Publication!;
        var videoSent = clip.Units.Count(u => u.Track == 0);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        // The last unit of each track is only complete when the next one starts: all but those arrive.
        while (publication.Count < clip.Units.Count - 2 && DateTime.UtcNow < deadline) await Task.Delay(20);
        List<AccessUnit> units;
        lock (publication.Units) units = [.. publication.Units];
        var tracks = Assert.Single(publication.Tracks);
        Assert.Equal([MediaCodec.H264, MediaCodec.Aac], tracks.Select(t => t.Codec));
        Assert.Equal(320, tracks[0].Width);
        Assert.True(units.Count(u => u.Track == 0) >= videoSent - 1, $"{units.Count(u => u.Track == 0)} of {videoSent} video units");
        Assert.True(units.Count(u => u.Track == 1) > 0);
        Assert.True(units.First(u => u.Track == 0).IsKeyframe);
        // The pictures are the clip's (RTP carried them without change; keyframes may gain in-band parameter sets).
        var secondVideo = clip.Units.Where(u => u.Track == 0).ElementAt(1);
        Assert.Equal(secondVideo.Data.ToArray(), units.Where(u => u.Track == 0).ElementAt(1).Data.ToArray());

        Assert.Equal(200, (await c.RequestAsync("TEARDOWN", url)).StatusCode);
        Assert.True(publication.Disposed);
    }

    [Fact]
    public async Task Publishers_are_refused_with_clear_statuses_and_the_connection_survives()
    {
        var (h, handler, c) = await StartAsync();
        await using var _ = h;
        await using var __ = c;
        var url = $"rtsp://127.0.0.1:{h.Port}/gw1/in/lobby";
        var sdp = SdpWriter.Build(TestClips.H264(seconds: 1, width: 320, height: 240).Tracks).ToString();

        // No credentials: challenged like any other request.
        var anonymous = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(401, (await anonymous.RequestAsync("ANNOUNCE", url, Utf8(sdp), SdpType)).StatusCode);
        await anonymous.DisposeAsync();

        handler.Decision = new RtspPublishDecision(403, "Forbidden (no publish right)");
        var refused = await c.RequestAsync("ANNOUNCE", url, Utf8(sdp), SdpType);
        Assert.Equal(403, refused.StatusCode);
        Assert.Equal("Forbidden (no publish right)", refused.ReasonPhrase);
        handler.Decision = new RtspPublishDecision(404, "Not Found (unknown device)");
        Assert.Equal(404, (await c.RequestAsync("ANNOUNCE", url, Utf8(sdp), SdpType)).StatusCode);
        handler.Decision = RtspPublishDecision.Accept;

        Assert.Equal(404, (await c.RequestAsync("ANNOUNCE", $"rtsp://127.0.0.1:{h.Port}/gw1/cam", Utf8(sdp), SdpType)).StatusCode);
        Assert.Equal(415, (await c.RequestAsync("ANNOUNCE", url, Utf8(sdp), ("Content-Type", "text/plain"))).StatusCode);
        Assert.Equal(400, (await c.RequestAsync("ANNOUNCE", url, Utf8("not sdp at all"), SdpType)).StatusCode);
        var mjpeg = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:streamid=0\r\n";
        Assert.Equal(415, (await c.RequestAsync("ANNOUNCE", url, Utf8(mjpeg), SdpType)).StatusCode);

        // A good announce, then the wrong order and an unsupported transport.
        Assert.Equal(200, (await c.RequestAsync("ANNOUNCE", url, Utf8(sdp), SdpType)).StatusCode);
        Assert.Equal(455, (await c.RequestAsync("RECORD", url)).StatusCode);
        Assert.Equal(461, (await c.RequestAsync("SETUP", $"{url}/trackID=0", ("Transport", "RTP/AVP;unicast;client_port=5000-5001;mode=record"))).StatusCode);
        Assert.Equal(404, (await c.RequestAsync("SETUP", $"{url}/trackID=7", ("Transport", "RTP/AVP/TCP;interleaved=0-1;mode=record"))).StatusCode);
        Assert.Equal(200, (await c.RequestAsync("SETUP", $"{url}/trackID=0", ("Transport", "RTP/AVP/TCP;interleaved=0-1;mode=record"))).StatusCode);
        // Garbage on the RTP channel costs packets, not the server.
        await c.SendRawAsync([(byte)'$', 0, 0, 3, 1, 2, 3]);
        Assert.Equal(200, (await c.RequestAsync("RECORD", url)).StatusCode);
        await c.SendRawAsync([(byte)'$', 0, 0, 3, 1, 2, 3]);
        Assert.Equal(200, (await c.RequestAsync("GET_PARAMETER", url)).StatusCode);

        // The target going away (the device's uplink ended) closes the publisher's connection.
        handler.Publication!.End();
        Assert.True(await c.ClosedByServerAsync(TimeSpan.FromSeconds(5)));
        // The socket closes first; the connection's cleanup disposes the publication right after.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (!handler.Publication.Disposed && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.True(handler.Publication.Disposed);
    }

    [Fact]
    public async Task Without_a_publish_handler_announce_is_not_allowed()
    {
        await using var h = await RtspHarness.StartAsync();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        c.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
        var r = await c.RequestAsync("ANNOUNCE", $"rtsp://127.0.0.1:{h.Port}/gw1/in/lobby", Utf8("v=0\r\n"), SdpType);
        Assert.Equal(405, r.StatusCode);
        Assert.DoesNotContain("ANNOUNCE", r.Headers["Allow"]);
    }
}
