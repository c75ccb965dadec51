using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;
using Pinhole.Testing;

namespace Pinhole.Transport.Tests.Rtsp;

[Trait("Category", "Integration")]
public class RtspClientIntegrationTests
{
    private static async Task<RecordingSink> PlayAsync(string url, Func<RecordingSink, bool> enough, RtspClientOptions? options = null)
    {
        var sink = new RecordingSink();
        var client = new RtspClient(new Uri(url), options);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(25));
        var run = client.RunAsync(sink, cts.Token);
        var done = await Task.WhenAny(sink.WaitAsync(enough), run, Task.Delay(TimeSpan.FromSeconds(20)));
        await cts.CancelAsync();
        await run; // surfaces a session failure
        Assert.True(done != run, "the session ended before enough media arrived");
        Assert.True(enough(sink), "not enough media within 20 s");
        Assert.Empty(sink.Errors);
        return sink;
    }

    private static void AssertVideo(RecordingSink sink, int track, MediaCodec codec)
    {
        var t = sink.Tracks[track];
        Assert.Equal((codec, 640, 360, 90000), (t.Codec, t.Width, t.Height, t.ClockRate));
        List<AccessUnit> video;
        lock (sink) video = sink.Units.Where(u => u.Track == track).ToList();
        Assert.True(video[0].IsKeyframe);
        Assert.Equal(3600, video[1].Pts - video[0].Pts); // 25 fps at 90 kHz
        Assert.All(video, u => Assert.True(u.Data.Length > 8));
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task H264_and_AAC_over_TCP_deliver_keyframe_first_video_and_audio_units()
    {
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.H264, Audio = CameraAudio.Aac });
        var sink = await PlayAsync(cam.Url.AbsoluteUri, s => s.Count(0) >= 30 && s.Count(1) >= 20);
        AssertVideo(sink, 0, MediaCodec.H264);
        Assert.Equal((MediaCodec.Aac, 48000), (sink.Tracks[1].Codec, sink.Tracks[1].SampleRate));
        var audio = sink.Units.Where(u => u.Track == 1).ToList();
        Assert.Equal(1024, audio[1].Pts - audio[0].Pts);
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task H265_over_UDP_delivers_decodable_video()
    {
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.H265 });
        var sink = await PlayAsync(cam.Url.AbsoluteUri, s => s.Count(0) >= 30, new RtspClientOptions { Transport = RtspLowerTransport.Udp });
        AssertVideo(sink, 0, MediaCodec.H265);
        List<AccessUnit> units;
        lock (sink) units = sink.Units.ToList();
        var decoded = FfprobeDecode.CountFrames(FfprobeDecode.ToAnnexB(sink.Tracks[0], units), "hevc");
        Assert.Equal((units.Count, ""), (decoded.Frames, decoded.Errors));
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task G711_alaw_over_TCP_and_mulaw_over_UDP()
    {
        await using var a = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.None, Audio = CameraAudio.Pcma });
        var sa = await PlayAsync(a.Url.AbsoluteUri, s => s.Count(0) >= 5);
        Assert.Equal((MediaCodec.PcmAlaw, 8000), (sa.Tracks[0].Codec, sa.Tracks[0].ClockRate));
        Assert.All(sa.Units, u => Assert.Equal(1024, u.Data.Length));
        await using var u = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.None, Audio = CameraAudio.Pcmu });
        var su = await PlayAsync(u.Url.AbsoluteUri, s => s.Count(0) >= 5, new RtspClientOptions { Transport = RtspLowerTransport.Udp });
        Assert.Equal(MediaCodec.PcmMulaw, su.Tracks[0].Codec);
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task Digest_auth_with_the_right_password_plays_and_the_wrong_one_fails_clearly_without_leaking_it()
    {
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { User = "alice", Password = "s3cret" });
        var sink = await PlayAsync(cam.UrlWithCredentials.AbsoluteUri, s => s.Count(0) >= 10);
        Assert.Equal(MediaCodec.H264, sink.Tracks[0].Codec);

        var wrong = new RtspClient(cam.UrlWith("alice", "wr0ng-pass"));
        var e = await Assert.ThrowsAsync<RtspClientException>(() => wrong.RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Equal(401, e.StatusCode);
        Assert.Contains("wrong user name or password", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("wr0ng-pass", e.ToString(), StringComparison.Ordinal);

        var none = new RtspClient(cam.Url);
        var e2 = await Assert.ThrowsAsync<RtspClientException>(() => none.RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("requires credentials", e2.Message, StringComparison.Ordinal);
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task Wrong_path_gives_404_quickly()
    {
        await using var cam = await RtspCamera.StartAsync();
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RtspClientException>(() => new RtspClient(new Uri(cam.Url, "/nope")).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Equal(404, e.StatusCode);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Dead_server_gives_a_clean_exception_quickly_without_the_password()
    {
        // A port nobody listens on: bind, read the number, close.
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RtspClientException>(() =>
            new RtspClient(new Uri($"rtsp://bob:hunter2@127.0.0.1:{port}/cam")).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), sw.Elapsed.ToString());
        Assert.True(e.Message.Contains("cannot connect", StringComparison.Ordinal), e.ToString());
        Assert.DoesNotContain("hunter2", e.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("bob", e.ToString(), StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}/cam", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_that_accepts_but_never_answers_times_out_at_the_response_timeout()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        try
        {
            var port = ((IPEndPoint)l.LocalEndpoint).Port;
            var sw = Stopwatch.StartNew();
            var e = await Assert.ThrowsAsync<RtspClientException>(() =>
                new RtspClient(new Uri($"rtsp://127.0.0.1:{port}/cam"), new RtspClientOptions { ResponseTimeout = TimeSpan.FromSeconds(1) }).RunAsync(new RecordingSink(), CancellationToken.None));
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), sw.Elapsed.ToString());
            Assert.True(e.Message.Contains("no answer to OPTIONS within 1 s", StringComparison.Ordinal), e.ToString());
        }
        finally
        {
            l.Stop();
        }
    }
}

public class RtspClientFakeServerTests
{
    private static RtspResponse Ok(string? session = null, string? transport = null)
    {
        var r = new RtspResponse(200, "OK");
        if (session is not null) r.Headers.Add("Session", session);
        if (transport is not null) r.Headers.Add("Transport", transport);
        return r;
    }

    private static Func<RtspRequest, RtspResponse?> Camera(FakeRtspServer? self, string capture, string publicMethods, int timeout, Func<RtspRequest, RtspResponse?>? before = null) => req =>
    {
        if (before?.Invoke(req) is { } early) return early;
        switch (req.Method)
        {
            case "OPTIONS":
                var o = Ok();
                o.Headers.Add("Public", publicMethods);
                return o;
            case "DESCRIBE":
                return self!.DescribeFrom(capture);
            case "SETUP":
                return Ok($"sess1;timeout={timeout}", req.Headers["Transport"]);
            default:
                return Ok("sess1");
        }
    };

    private sealed class Holder { public FakeRtspServer? Server; }

    private static FakeRtspServer Start(string capture, string publicMethods, int timeout, Func<RtspRequest, RtspResponse?>? before = null)
    {
        var h = new Holder();
        h.Server = new FakeRtspServer(req => Camera(h.Server, capture, publicMethods, timeout, before)(req), capture);
        return h.Server;
    }

    [Theory]
    [InlineData("OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER", "GET_PARAMETER")]
    [InlineData("OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN", "OPTIONS")]
    public async Task Keepalive_uses_GET_PARAMETER_when_public_else_OPTIONS_well_inside_the_session_timeout(string publicMethods, string expected)
    {
        await using var server = Start("pcma", publicMethods, timeout: 3);
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(4.5));
        await new RtspClient(new Uri(server.Url())).RunAsync(sink, cts.Token);
        var methods = server.Requests.Select(r => r.Method).ToList();
        var play = methods.IndexOf("PLAY");
        // timeout 3 s => every second: at least two keepalives in 4.5 s (slack for a busy machine), all carrying the session.
        Assert.True(methods.Skip(play + 1).Count(m => m == expected) >= 2, string.Join(",", methods));
        Assert.All(server.Requests.Skip(play), r => Assert.Equal("sess1", r.Headers["Session"]));
        Assert.True(sink.Units.Count > 0);
        Assert.Equal("TEARDOWN", methods[^1]);
    }

    [Fact]
    public async Task Receiver_reports_go_back_on_the_RTCP_channel_with_the_senders_SSRC_and_sequence()
    {
        await using var server = Start("h264-aac", "OPTIONS, DESCRIBE, SETUP, PLAY", 60);
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1.8));
        await new RtspClient(new Uri(server.Url()), new RtspClientOptions { ReceiverReportInterval = TimeSpan.FromMilliseconds(500) }).RunAsync(sink, cts.Token);
        var frames = server.ClientFrames.ToList();
        Assert.Contains(frames, f => f.Channel == 1);
        Assert.Contains(frames, f => f.Channel == 3);
        var videoSsrc = Pinhole.Transport.Rtp.RtpPacket.Parse(Captures.Stream("h264-aac").Frames.First(f => f.Channel == 0).Payload).Ssrc;
        var rr = frames.Where(f => f.Channel == 1).SelectMany(f => Pinhole.Transport.Rtp.RtcpPacket.ParseCompound(f.Payload.Span)).Last();
        Assert.Equal(Pinhole.Transport.Rtp.RtcpPacket.ReceiverReportType, rr.PacketType);
        var block = Assert.Single(rr.Reports);
        Assert.Equal(videoSsrc, block.Ssrc);
        Assert.True(block.HighestSequence > 0);
    }

    [Fact]
    public async Task Redirect_is_followed_and_a_redirect_loop_is_bounded()
    {
        await using var target = Start("h264-aac", "OPTIONS, DESCRIBE, SETUP, PLAY", 60);
        await using var redirector = new FakeRtspServer(req =>
        {
            var r = new RtspResponse(302, "Moved Temporarily");
            r.Headers.Add("Location", target.Url());
            return r;
        });
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var run = new RtspClient(new Uri(redirector.Url())).RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 5), run);
        await cts.CancelAsync();
        await run;
        Assert.True(sink.Count(0) >= 5);

        var h = new Holder();
        await using var loop = h.Server = new FakeRtspServer(req =>
        {
            var r = new RtspResponse(301, "Moved Permanently");
            r.Headers.Add("Location", h.Server!.Url("/again"));
            return r;
        });
        var e = await Assert.ThrowsAsync<RtspClientException>(() => new RtspClient(new Uri(loop.Url())).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("redirect", e.Message, StringComparison.Ordinal);
        Assert.Equal(4, loop.Requests.Count(r => r.Method == "OPTIONS")); // first try + MaxRedirects (3)
    }

    [Fact]
    public async Task Response_without_CSeq_is_matched_to_the_only_request_in_flight()
    {
        var h = new Holder();
        await using var server = h.Server = new FakeRtspServer(req => Camera(h.Server, "pcma", "OPTIONS", 60)(req), "pcma")
        {
            Raw = req => req.Method == "OPTIONS" ? "RTSP/1.0 200 OK\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"u8.ToArray() : null,
        };
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var run = new RtspClient(new Uri(server.Url())).RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 2), run);
        await cts.CancelAsync();
        await run;
        Assert.True(sink.Count(0) >= 2);
    }

    [Fact]
    public async Task No_log_line_at_any_level_contains_the_password_or_user()
    {
        await using var server = Start("pcma", "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER", 3);
        var logger = new ListLogger<RtspClient>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await new RtspClient(new Uri($"rtsp://dave:Pa55word@127.0.0.1:{server.Port}/cam"), null, logger).RunAsync(new RecordingSink(), cts.Token);
        var lines = logger.Lines;
        Assert.Contains(lines, l => l.Contains("DESCRIBE", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("playing", StringComparison.Ordinal));
        Assert.All(lines, l => Assert.DoesNotContain("Pa55word", l, StringComparison.Ordinal));
        Assert.All(lines, l => Assert.DoesNotContain("dave", l, StringComparison.Ordinal));
        // And the request line on the wire never carries them either.
        Assert.All(server.Requests, r => Assert.DoesNotContain("dave", r.Uri, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Credentials_are_not_sent_to_a_host_a_redirect_points_to()
    {
        await using var target = new FakeRtspServer(req =>
        {
            var r = new RtspResponse(401, "Unauthorized");
            r.Headers.Add("WWW-Authenticate", "Basic realm=\"evil\"");
            return r;
        });
        await using var redirector = new FakeRtspServer(req =>
        {
            var r = new RtspResponse(302, "Moved Temporarily");
            r.Headers.Add("Location", target.Url().Replace("127.0.0.1", "localhost", StringComparison.Ordinal));
            return r;
        });
        var e = await Assert.ThrowsAsync<RtspClientException>(() =>
            new RtspClient(new Uri($"rtsp://erin:secret@127.0.0.1:{redirector.Port}/cam")).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("another host", e.Message, StringComparison.Ordinal);
        Assert.NotEmpty(target.Requests);
        Assert.All(target.Requests, r => Assert.Null(r.Headers["Authorization"]));
    }

    [Fact]
    public async Task Digest_SHA256_challenge_is_answered_and_verified_by_the_server_helper()
    {
        var digest = new DigestServer("Pinhole", TimeSpan.FromMinutes(1));
        string? Lookup(string user, string realm, string alg) => DigestMath.Ha1(DigestAlgorithm.Sha256, user, realm, "pw");
        var verified = 0;
        await using var server = Start("pcma", "OPTIONS, DESCRIBE, SETUP, PLAY", 60, before: req =>
        {
            if (req.Headers["Authorization"] is { } a && digest.Verify(a, req.Method, Lookup, out _) == DigestVerdict.Valid)
            {
                verified++;
                return null;
            }
            var r = new RtspResponse(401, "Unauthorized");
            r.Headers.Add("WWW-Authenticate", digest.CreateChallenge(DigestAlgorithm.Md5));
            r.Headers.Add("WWW-Authenticate", digest.CreateChallenge(DigestAlgorithm.Sha256));
            return r;
        });
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var run = new RtspClient(new Uri($"rtsp://carol:pw@127.0.0.1:{server.Port}/cam")).RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 3), run);
        await cts.CancelAsync();
        await run;
        Assert.True(sink.Count(0) >= 3);
        Assert.True(verified >= 4); // OPTIONS (retried), DESCRIBE, SETUP, PLAY
        Assert.Contains("algorithm=SHA-256", server.Requests.Last(r => r.Headers.Contains("Authorization")).Headers["Authorization"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Garbage_from_the_server_is_a_clean_protocol_error()
    {
        await using var server = new FakeRtspServer(_ => null)
        {
            Raw = req => System.Text.Encoding.ASCII.GetBytes($"RTSP/1.0 200 OK\r\nCSeq: {req.CSeq}\r\nContent-Length: 99999999\r\n\r\n"), // over the body limit
        };
        var e = await Assert.ThrowsAsync<RtspClientException>(() => new RtspClient(new Uri(server.Url())).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("exceeds the limit", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http_server_instead_of_RTSP_is_a_clean_protocol_error()
    {
        await using var server = new FakeRtspServer(_ => null) { Raw = _ => "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"u8.ToArray() };
        var e = await Assert.ThrowsAsync<RtspClientException>(() => new RtspClient(new Uri(server.Url())).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("malformed data from the server", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Server_that_hangs_up_or_stops_sending_fails_the_session_quickly()
    {
        await using var hangup = new FakeRtspServer(_ => null);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RtspClientException>(() => new RtspClient(new Uri(hangup.Url())).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("closed the connection", e.Message, StringComparison.Ordinal);

        // A server that says PLAY OK but never sends media: the media timeout ends the session.
        await using var silent = Start("pcma", "OPTIONS, DESCRIBE, SETUP, PLAY", 60);
        var quiet = new FakeRtspServer(req => req.Method == "PLAY" ? Ok("sess1") : Camera(silent, "pcma", "OPTIONS", 60)(req));
        await using var _ = quiet;
        sw.Restart();
        var e2 = await Assert.ThrowsAsync<RtspClientException>(() =>
            new RtspClient(new Uri(quiet.Url()), new RtspClientOptions { MediaTimeout = TimeSpan.FromSeconds(1) }).RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.Contains("no media", e2.Message, StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4), sw.Elapsed.ToString());
    }
}
