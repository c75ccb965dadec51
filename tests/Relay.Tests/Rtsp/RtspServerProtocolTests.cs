using Pinhole.Testing;
using RtspTransport = Pinhole.Transport.Rtsp.RtspTransport;
using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.Relay.Rtsp;
using Pinhole.Streaming.Rtsp;
using Pinhole.Streaming;
using Pinhole.Relay.Web;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>Status codes, authentication, sessions and limits, seen through a raw RTSP client.</summary>
public class RtspServerProtocolTests(ITestOutputHelper output)
{
    private static string Base(RtspHarness h, string path = "gw1/cam") => h.Url(path, credentials: false);

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Without_credentials_the_server_answers_401_with_SHA256_MD5_and_Basic_challenges()
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var options = await c.RequestAsync("OPTIONS", Base(h));
        Assert.Equal(200, options.StatusCode);
        Assert.Contains("DESCRIBE", options.Headers["Public"]);
        var r = await c.RequestAsync("DESCRIBE", Base(h));
        Assert.Equal(401, r.StatusCode);
        var challenges = HttpAuthChallenge.ParseAll(r.Headers.GetValues("WWW-Authenticate"));
        Assert.Equal(["Digest SHA-256", "Digest MD5", "Basic "], challenges.Select(x => x.Scheme + " " + x["algorithm"]));
        Assert.All(challenges, x => Assert.Equal("pinhole", x["realm"]));
        Assert.Empty(r.Body.ToArray());
    }

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("SHA-256")]
    [InlineData("MD5")]
    public async Task Digest_with_the_right_password_is_accepted_and_with_a_wrong_one_refused(string algorithm)
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var challenge = await c.RequestAsync("DESCRIBE", Base(h));
        Assert.Equal(401, challenge.StatusCode);

        c.Authorization = RawRtspClient.DigestFor(challenge, "DESCRIBE", Base(h), RtspHarness.User, "wrong", algorithm);
        Assert.Equal(401, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);

        // Right password, but the digest was computed for another stream's URI.
        c.Authorization = RawRtspClient.DigestFor(challenge, "DESCRIBE", Base(h, "gw1/other"), RtspHarness.User, RtspHarness.Password, algorithm);
        Assert.Equal(401, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);

        c.Authorization = RawRtspClient.DigestFor(challenge, "DESCRIBE", Base(h), RtspHarness.User, RtspHarness.Password, algorithm);
        var ok = await c.RequestAsync("DESCRIBE", Base(h));
        Assert.Equal(200, ok.StatusCode);
        Assert.Equal("application/sdp", ok.Headers["Content-Type"]);
        Assert.Equal(Base(h) + "/", ok.Headers["Content-Base"]);
        Assert.Contains("a=control:trackID=0", ok.BodyText);
        Assert.Contains("H264/90000", ok.BodyText);

        // The response covers the method: the same header replayed for another method fails.
        Assert.Equal(401, (await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"))).StatusCode);
        Assert.Equal(3, h.Metric("pinhole_rtsp_auth_failures_total"));
    }

    // live555 (RTSPClient::createAuthenticatorString, 2023 releases) writes the header below and
    // ignores qop and algorithm: it answers the last Digest challenge it saw (ours: MD5) the RFC 2069
    // way, and after DESCRIBE it signs every request with the session's base URL (the Content-Base),
    // not the request URL.
    private static string Live555Digest(RtspResponse unauthorized, string method, string uri, string algorithm = "MD5")
    {
        var challenge = HttpAuthChallenge.ParseAll(unauthorized.Headers.GetValues("WWW-Authenticate"))
            .Last(c => c.Is("Digest") && string.Equals(c["algorithm"], algorithm, StringComparison.OrdinalIgnoreCase));
        Assert.True(DigestMath.TryParseAlgorithm(algorithm, out var alg));
        var (realm, nonce) = (challenge["realm"]!, challenge["nonce"]!);
        var ha1 = DigestMath.Ha1(alg, RtspHarness.User, realm, RtspHarness.Password);
        var response = DigestMath.Response(alg, ha1, nonce, method, uri, null, null, null);
        var header = $"Digest username=\"{RtspHarness.User}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"";
        return alg == DigestAlgorithm.Md5 ? header : header + ", algorithm=" + algorithm;
    }

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("tcp", "MD5")]
    [InlineData("udp", "MD5")]
    [InlineData("tcp", "SHA-256")]
    public async Task A_live555_client_signing_SETUP_and_PLAY_with_the_base_URL_plays(string transport, string algorithm)
    {
        await using var h = await RtspHarness.StartAsync(output: output);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var ua = ("User-Agent", "openRTSP (LIVE555 Streaming Media v2023.11.30)");
        Assert.Equal(200, (await c.RequestAsync("OPTIONS", Base(h), ua)).StatusCode);
        var challenge = await c.RequestAsync("DESCRIBE", Base(h), ua, ("Accept", "application/sdp"));
        Assert.Equal(401, challenge.StatusCode);

        // DESCRIBE is signed with the URL it requests.
        c.Authorization = Live555Digest(challenge, "DESCRIBE", Base(h), algorithm);
        var describe = await c.RequestAsync("DESCRIBE", Base(h), ua, ("Accept", "application/sdp"));
        Assert.Equal(200, describe.StatusCode);
        var contentBase = describe.Headers["Content-Base"]!;
        Assert.Equal(Base(h) + "/", contentBase);

        // SETUP of the track and the aggregate PLAY are signed with the Content-Base.
        c.Authorization = Live555Digest(challenge, "SETUP", contentBase, algorithm);
        using var udp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        var port = ((System.Net.IPEndPoint)udp.Client.LocalEndPoint!).Port;
        var offer = transport == "tcp" ? "RTP/AVP/TCP;unicast;interleaved=0-1" : $"RTP/AVP;unicast;client_port={port}-{port + 1}";
        var setup = await c.RequestAsync("SETUP", contentBase + "trackID=0", ua, ("Transport", offer));
        Assert.Equal(200, setup.StatusCode);
        c.Authorization = Live555Digest(challenge, "PLAY", contentBase, algorithm);
        var play = await c.RequestAsync("PLAY", contentBase, ua, ("Range", "npt=0.000-"));
        Assert.Equal(200, play.StatusCode);

        if (transport == "tcp")
        {
            Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1)));
            Assert.True(c.Channels.TryGetValue(0, out var media) && media.Packets > 0, "no RTP reached the live555-style client");
        }
        else
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var datagram = await udp.ReceiveAsync(wait.Token);
            Assert.Equal(2, datagram.Buffer[0] >> 6); // RTP version 2
        }
        c.Authorization = Live555Digest(challenge, "TEARDOWN", contentBase, algorithm);
        Assert.Equal(200, (await c.RequestAsync("TEARDOWN", contentBase, ua)).StatusCode);
        Assert.Equal(0, h.Metric("pinhole_rtsp_auth_failures_total"));
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_digest_uri_is_accepted_only_when_it_names_the_requested_stream()
    {
        // Nine deliberate failures from one address: room for them in the login throttle, so each is
        // judged by the digest-uri rule (401), not refused unchecked (503) by the throttle.
        var throttle = new Pinhole.Transport.Security.LoginThrottle(new BrowserViewingOptions { FreeLoginFailures = 100 }.LoginThrottle(), TimeProvider.System);
        await using var h = await RtspHarness.StartAsync(output: output, throttle: throttle);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264, TestMedia.Aac).Start();
        await using var other = new StreamFeeder(h.Registry.GetOrAdd("gw1", "other"), TestMedia.H264).Start();
        var baseUrl = Base(h);
        var path = new Uri(baseUrl).AbsolutePath; // "/gw1/cam"
        var setupUrl = baseUrl + "/trackID=0";

        async Task<int> SetupSignedWith(string uri)
        {
            await using var c = await RawRtspClient.ConnectAsync(h.Port);
            var challenge = await c.RequestAsync("DESCRIBE", baseUrl);
            c.Authorization = Live555Digest(challenge, "SETUP", uri);
            return (await c.RequestAsync("SETUP", setupUrl, ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"))).StatusCode;
        }

        // The same stream: the request URL, the base with and without '/', the aggregate URL, their paths.
        foreach (var uri in new[] { setupUrl, baseUrl, baseUrl + "/", baseUrl + "/*", path, path + "/", path + "/trackID=0", path + "/*" })
            Assert.True(await SetupSignedWith(uri) == 200, $"digest-uri {uri} was refused for SETUP {setupUrl}");

        // Another stream, another track of this stream, another port, or nonsense: refused.
        var otherPort = $"rtsp://127.0.0.1:{h.Port + 1}/gw1/cam/";
        foreach (var uri in new[] { Base(h, "gw1/other") + "/", "/gw1/other", "/gw1/cam2/", baseUrl + "/trackID=1", path + "/trackID=1", otherPort, "rtsp://", "*", "" })
        {
            var status = await SetupSignedWith(uri);
            Assert.True(status == 401, $"digest-uri '{uri}' for SETUP {setupUrl} was answered {status}, not 401");
        }
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Basic_with_the_right_password_is_accepted_and_with_a_wrong_one_refused()
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        c.Authorization = RawRtspClient.Basic(RtspHarness.User, "wrong");
        Assert.Equal(401, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);
        c.Authorization = RawRtspClient.Basic("mallory", RtspHarness.Password);
        Assert.Equal(401, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);
        c.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
        Assert.Equal(200, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);
        Assert.Equal(2, h.Metric("pinhole_rtsp_auth_failures_total"));
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Ffprobe_with_a_wrong_password_gets_401_and_no_stream()
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var url = $"rtsp://{RtspHarness.User}:nope@127.0.0.1:{h.Port}/gw1/cam";
        var (streams, errors, code) = await FfProbe.ProbeAsync(url, "tcp", 1);
        output.WriteLine(errors);
        Assert.NotEqual(0, code);
        Assert.Empty(streams);
        Assert.Contains("401", errors);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Unknown_stream_is_404_and_an_offline_device_is_503()
    {
        await using var h = await RtspHarness.StartAsync();
        var stream = h.Registry.GetOrAdd("gw1", "cam");
        h.Registry.GetOrAdd("gw2", "never-described");
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        c.Authorization = RawRtspClient.Basic(RtspHarness.User, RtspHarness.Password);
        Assert.Equal(404, (await c.RequestAsync("DESCRIBE", Base(h, "gw1/other"))).StatusCode);
        Assert.Equal(404, (await c.RequestAsync("DESCRIBE", Base(h, "gw9/cam"))).StatusCode);
        Assert.Equal(404, (await c.RequestAsync("DESCRIBE", Base(h, "gw1"))).StatusCode);
        Assert.Equal(404, (await c.RequestAsync("DESCRIBE", Base(h, "gw1/cam/x/y"))).StatusCode);
        Assert.Equal(503, (await c.RequestAsync("DESCRIBE", Base(h, "gw2/never-described"))).StatusCode);

        await using (new StreamFeeder(stream, TestMedia.H264).Start())
            Assert.Equal(200, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);
        stream.SetOffline();
        Assert.Equal(503, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);
        Assert.Equal(503, (await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"))).StatusCode);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Without_configured_viewers_no_credentials_are_asked()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await c.RequestAsync("DESCRIBE", Base(h))).StatusCode);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Play_announces_RTP_Info_matching_the_first_packets_and_sends_whole_frames()
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264, TestMedia.Aac).Start();
        await Task.Delay(300); // let the hub cache the start of a GOP
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var play = await c.PlayTcpAsync(Base(h), 2);
        Assert.Equal(200, play.StatusCode);
        Assert.NotNull(c.Session);
        Assert.True(c.Session!.Length >= 8);
        var info = play.Headers["RTP-Info"]!;
        output.WriteLine(info);
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1.5)));
        var entries = info.Split(',').Select(e => e.Split(';').Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1])).ToArray();
        Assert.Equal([Base(h) + "/trackID=0", Base(h) + "/trackID=1"], entries.Select(e => e["url"]));
        for (byte ch = 0; ch <= 2; ch += 2)
        {
            var first = c.FirstPacket[ch];
            var e = entries[ch / 2];
            Assert.Equal(ushort.Parse(e["seq"]), BinaryPrimitives.ReadUInt16BigEndian(first.AsSpan(2)));
            if (ch == 0) // the first frame sent (the cached keyframe) defines rtptime
                Assert.Equal(uint.Parse(e["rtptime"]), BinaryPrimitives.ReadUInt32BigEndian(first.AsSpan(4)));
        }
        // 1.5 s of 25 fps video plus the cached GOP start: markers close whole access units.
        output.WriteLine(string.Join(", ", c.Channels.Select(kv => $"ch{kv.Key}: {kv.Value}")));
        Assert.InRange(c.Channels[0].Markers, 30, 70);
        Assert.True(c.Channels[2].Markers >= 50);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task After_the_device_was_offline_RTP_time_continues_forward_even_when_its_clock_restarted()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        var stream = h.Registry.GetOrAdd("gw1", "cam");
        var feeder = new StreamFeeder(stream, TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await c.PlayTcpAsync(Base(h), 1)).StatusCode);
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1.5)));
        await feeder.DisposeAsync();
        stream.SetOffline();
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(0.5)));
        var before = BinaryPrimitives.ReadUInt32BigEndian(c.LastPacket[0].AsSpan(4));
        var packets = c.Channels[0].Packets;

        // The device comes back; the new feeder's PTS start at 0 again, far behind the 1.5 s sent so far.
        await using var again = new StreamFeeder(stream, TestMedia.H264).Start();
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1)));
        Assert.True(c.Channels[0].Packets > packets + 10);
        var after = BinaryPrimitives.ReadUInt32BigEndian(c.LastPacket[0].AsSpan(4));
        var forward = unchecked((int)(after - before));
        output.WriteLine($"RTP time advanced {forward / 90_000.0:F2} s across the gap");
        // Without re-anchoring this would be about -0.5 s (new PTS restart at 0); with it, the 0.5 s
        // gap plus about 1 s of new video: forward, by about the wallclock time.
        Assert.InRange(forward, (int)(1.2 * 90_000), 3 * 90_000);
    }

    // Found with real peers: the edge's camera pipeline restarted, the camera's new RTP session started
    // a new timestamp origin, and a viewer that stayed saw RTP time jump back 10 s (32 s with B-frames).
    // Whatever the edge says in between (StreamEnd, a re-announce, nothing), RTP time must keep
    // advancing (RFC 3550 §5.1): the viewer sees a pause as long as the gap, never a jump back.
    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("offline", -10)]
    [InlineData("offline", 60)]
    [InlineData("re-announce", -10)]
    [InlineData("re-announce", 60)]
    [InlineData("nothing", -10)]
    [InlineData("nothing", 60)]
    public async Task When_the_source_restarts_its_clock_RTP_time_advances_by_the_gap(string between, int originSeconds)
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        var stream = h.Registry.GetOrAdd("gw1", "cam");
        var feeder = new StreamFeeder(stream, TestMedia.H264, TestMedia.Aac) { Origin = TimeSpan.FromSeconds(20) }.Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var timeline = new List<(byte Channel, uint Timestamp, TimeSpan At)>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        c.OnFrame = (channel, payload) =>
        {
            if (channel % 2 == 0) timeline.Add((channel, BinaryPrimitives.ReadUInt32BigEndian(payload.Span[4..]), clock.Elapsed));
        };
        Assert.Equal(200, (await c.PlayTcpAsync(Base(h), 2)).StatusCode);
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1.5)));
        await feeder.DisposeAsync();
        if (between == "offline") stream.SetOffline();
        var pause = clock.Elapsed;
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(0.7)));

        // The source's new clock starts 10 s behind or 60 s ahead of where it was (20 s + 1.5 s).
        await using var again = new StreamFeeder(stream, TestMedia.H264, TestMedia.Aac) { Origin = TimeSpan.FromSeconds(20 + originSeconds) }
            .Start(announce: between != "nothing");
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1.5)));

        foreach (var channel in new byte[] { 0, 2 })
        {
            var track = timeline.Where(t => t.Channel == channel).ToList();
            Assert.True(track.Count > 20, $"channel {channel}: {track.Count} packets");
            var rate = channel == 0 ? 90_000.0 : TestMedia.Aac.Info.ClockRate;
            for (var i = 1; i < track.Count; i++)
            {
                var step = unchecked((int)(track[i].Timestamp - track[i - 1].Timestamp)) / rate;
                var wall = (track[i].At - track[i - 1].At).TotalSeconds;
                // Never back; forward by about the wallclock time between the packets (0.7 s and more across the gap).
                Assert.True(step >= 0 && step < wall + 0.5, $"channel {channel} packet {i}: RTP time stepped {step:+0.000;-0.000} s in {wall:0.000} s of wallclock");
            }
            // From the last packet before the gap: RTP time advanced by the wallclock time, gap included.
            var before = track.FindLast(t => t.At < pause);
            var total = unchecked((int)(track[^1].Timestamp - before.Timestamp)) / rate;
            var elapsed = (track[^1].At - before.At).TotalSeconds;
            output.WriteLine($"channel {channel}: RTP time advanced {total:0.00} s in {elapsed:0.00} s across the gap");
            Assert.InRange(total, elapsed - 0.5, elapsed + 0.5);
        }
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Sender_reports_pair_wallclock_with_the_RTP_time_of_the_stream()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false, o => o with { SenderReportInterval = TimeSpan.FromMilliseconds(400) });
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var reports = new List<(DateTimeOffset Received, RtcpPacket Report, uint LastRtp)>();
        c.OnFrame = (channel, payload) =>
        {
            if (channel != 1) return;
            var last = BinaryPrimitives.ReadUInt32BigEndian(c.LastPacket[0].AsSpan(4));
            foreach (var p in RtcpPacket.ParseCompound(payload.Span)) reports.Add((DateTimeOffset.UtcNow, p, last));
        };
        Assert.Equal(200, (await c.PlayTcpAsync(Base(h), 1)).StatusCode);
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1.5)));
        Assert.NotEmpty(reports);
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(c.FirstPacket[0].AsSpan(8));
        foreach (var (received, sr, lastRtp) in reports)
        {
            Assert.Equal(RtcpPacket.SenderReportType, sr.PacketType);
            Assert.Equal(ssrc, sr.Ssrc);
            var wallclock = DateTimeOffset.UnixEpoch.AddSeconds((sr.NtpTimestamp >> 32) - 2_208_988_800.0 + (sr.NtpTimestamp & 0xFFFFFFFF) / 4294967296.0);
            Assert.True((received - wallclock).Duration() < TimeSpan.FromSeconds(1), $"SR wallclock {wallclock:O} vs received {received:O}");
            // The report's RTP time is "now" on the stream: at or just after the last packet's timestamp.
            Assert.InRange(unchecked((int)(sr.RtpTimestamp - lastRtp)), 0, 90_000 / 4);
            Assert.True(sr.PacketCount > 0 && sr.OctetCount > sr.PacketCount);
        }
    }

    [Fact]
    public void Ntp_timestamps_count_seconds_since_1900_with_a_32_bit_fraction()
    {
        Assert.Equal(2_208_988_800UL << 32, RtspServerSession.ToNtp(DateTimeOffset.UnixEpoch));
        Assert.Equal((2_208_988_801UL << 32) | 0x8000_0000, RtspServerSession.ToNtp(DateTimeOffset.UnixEpoch.AddSeconds(1.5)));
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Session_errors_are_answered_with_their_status_codes()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(455, (await c.RequestAsync("PLAY", Base(h))).StatusCode);
        Assert.Equal(461, (await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP;multicast;port=5000-5001"))).StatusCode);
        Assert.Equal(404, (await c.RequestAsync("SETUP", Base(h) + "/trackID=7", ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"))).StatusCode);
        Assert.Equal(501, (await c.RequestAsync("FLY", Base(h))).StatusCode);
        // A Transport header that is not one: an error answer, and the connection stays usable.
        Assert.InRange((await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP/TCP;interleaved=x-y;;="))).StatusCode, 400, 461);
        Assert.Equal(400, (await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP/TCP;unicast;interleaved=300-301"))).StatusCode);
        Assert.Equal(0, h.Server.SessionCount);
        Assert.Equal(405, (await c.RequestAsync("RECORD", Base(h))).StatusCode);
        Assert.Equal(551, (await c.RequestAsync("DESCRIBE", Base(h), ("Require", "com.example.fancy"))).StatusCode);
        var setup = await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP/TCP;unicast;interleaved=4-5"));
        Assert.Equal(200, setup.StatusCode);
        Assert.Contains("interleaved=4-5", setup.Headers["Transport"]);
        Assert.Contains(";timeout=60", setup.Headers["Session"]);
        var real = c.Session;
        Assert.Equal(454, (await c.RequestAsync("PLAY", Base(h), ("Session", "0123456789abcdef"))).StatusCode);
        Assert.Equal(200, (await c.RequestAsync("GET_PARAMETER", Base(h))).StatusCode);
        // The session-level control "*" appended to the base URL names the aggregate.
        var play = await c.RequestAsync("PLAY", Base(h) + "/*");
        Assert.Equal(200, play.StatusCode);
        Assert.StartsWith($"url={Base(h)}/trackID=0;seq=", play.Headers["RTP-Info"]);
        Assert.Equal(455, (await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP/TCP;unicast;interleaved=4-5"))).StatusCode);
        Assert.Equal(200, (await c.RequestAsync("TEARDOWN", Base(h), ("Session", real!))).StatusCode);
        Assert.Equal(0, h.Server.SessionCount);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Udp_setup_answers_an_even_server_port_pair_and_the_client_ports()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var setup = await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", "RTP/AVP;unicast;client_port=40000-40001"));
        Assert.Equal(200, setup.StatusCode);
        var t = RtspTransport.Parse(setup.Headers["Transport"]!);
        Assert.Equal(new RtspRange(40000, 40001), t.ClientPort);
        Assert.Equal(0, t.ServerPort!.Value.First % 2);
        Assert.Equal(t.ServerPort.Value.First + 1, t.ServerPort.Value.Second);
        Assert.NotNull(t.Ssrc);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Udp_media_reaches_the_client_ports_and_RTCP_alone_keeps_the_session_alive()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false, o => o with { SessionTimeout = TimeSpan.FromSeconds(1.5) });
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        using var rtp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        using var rtcp = new System.Net.Sockets.UdpClient(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        var rtpPort = ((System.Net.IPEndPoint)rtp.Client.LocalEndPoint!).Port;
        var rtcpPort = ((System.Net.IPEndPoint)rtcp.Client.LocalEndPoint!).Port;
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        var setup = await c.RequestAsync("SETUP", Base(h) + "/trackID=0", ("Transport", $"RTP/AVP;unicast;client_port={rtpPort}-{rtcpPort}"));
        Assert.Equal(200, setup.StatusCode);
        var server = RtspTransport.Parse(setup.Headers["Transport"]!).ServerPort!.Value;
        Assert.Equal(200, (await c.RequestAsync("PLAY", Base(h))).StatusCode);

        // No more RTSP requests: only receiver reports, every 400 ms, for 3 s (twice the timeout).
        var rr = new RtcpPacket { PacketType = RtcpPacket.ReceiverReportType, Ssrc = 1234 }.ToArray();
        var serverRtcp = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, server.Second);
        var received = 0;
        var markers = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var receive = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var d = await rtp.ReceiveAsync(cts.Token);
                    received++;
                    if ((d.Buffer[1] & 0x80) != 0) markers++;
                }
            }
            catch (OperationCanceledException) { }
        });
        while (!cts.IsCancellationRequested)
        {
            await rtcp.SendAsync(rr, serverRtcp);
            try { await Task.Delay(400, cts.Token); } catch (OperationCanceledException) { }
        }
        await receive;
        output.WriteLine($"{received} RTP datagrams, {markers} frames over UDP in 3 s");
        Assert.Equal(1, h.Server.SessionCount);
        Assert.True(markers >= 65, $"{markers} frames");
        Assert.Equal(200, (await c.RequestAsync("GET_PARAMETER", Base(h))).StatusCode);

        // Without RTCP and requests the same session times out.
        await WaitUntil(() => h.Server.SessionCount == 0, seconds: 4);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task When_the_viewer_limit_is_reached_play_is_503()
    {
        var registry = new MediaStreamRegistry(new MediaStreamLimits { MaxViewersPerStream = 1 });
        await using var h = await RtspHarness.StartAsync(registry: registry);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var a = await RawRtspClient.ConnectAsync(h.Port);
        await using var b = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await a.PlayTcpAsync(Base(h), 1)).StatusCode);
        Assert.Equal(503, (await b.PlayTcpAsync(Base(h), 1)).StatusCode);
        Assert.Equal(1, h.Metric("pinhole_rtsp_rejected_total"));
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_session_without_requests_times_out_and_keepalives_prevent_it()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false, o => o with { SessionTimeout = TimeSpan.FromSeconds(1.5) });
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        await using var idle = await RawRtspClient.ConnectAsync(h.Port);
        await using var alive = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await idle.PlayTcpAsync(Base(h), 1)).StatusCode);
        Assert.Equal(200, (await alive.PlayTcpAsync(Base(h), 1)).StatusCode);
        var idleTask = idle.PumpAsync(TimeSpan.FromSeconds(4));
        for (var i = 0; i < 8; i++)
        {
            await Task.Delay(400);
            // Responses interleave with media; RequestAsync skips the media frames.
            Assert.Equal(200, (await alive.RequestAsync("GET_PARAMETER", Base(h))).StatusCode);
        }
        Assert.False(await idleTask, "the idle session should have been closed by the server");
        Assert.Equal(1, h.Server.SessionCount);
    }

    [Fact]
    public async Task Connections_beyond_the_limit_are_closed_at_once()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false, o => o with { MaxConnections = 2 });
        await using var a = await RawRtspClient.ConnectAsync(h.Port);
        await using var b = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await a.RequestAsync("OPTIONS", Base(h))).StatusCode);
        Assert.Equal(200, (await b.RequestAsync("OPTIONS", Base(h))).StatusCode);
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        await Assert.ThrowsAnyAsync<Exception>(() => c.RequestAsync("OPTIONS", Base(h)));
        await a.DisposeAsync();
        await WaitUntil(() => h.Server.ConnectionCount == 1);
        await using var d = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await d.RequestAsync("OPTIONS", Base(h))).StatusCode);
    }

    [Fact]
    public async Task AddRtspServer_registers_one_server_and_one_hosted_service_even_when_called_twice()
    {
        var services = new ServiceCollection();
        services.AddSingleton(new Pinhole.Relay.Configuration.RelayConfig { Rtsp = "127.0.0.1:0" });
        services.AddRtspServer().AddRtspServer();
        await using var provider = services.BuildServiceProvider();
        var hosted = provider.GetServices<Microsoft.Extensions.Hosting.IHostedService>().ToList();
        Assert.Same(provider.GetRequiredService<RtspServer>(), Assert.Single(hosted));
        Assert.Equal(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0), provider.GetRequiredService<RtspServerOptions>().EndPoint);
    }

    internal static async Task WaitUntil(Func<bool> condition, double seconds = 5)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(20);
        }
    }
}
