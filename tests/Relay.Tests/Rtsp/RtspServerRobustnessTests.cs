using Pinhole.Testing;
using System.Net.Sockets;
using System.Text;
using Pinhole.Transport.Media;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>Slow viewers, track changes and hostile input: the server keeps serving everyone else.</summary>
public class RtspServerRobustnessTests(ITestOutputHelper output)
{
    private static string Base(RtspHarness h, string path = "gw1/cam") => h.Url(path, credentials: false);

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_viewer_that_stops_reading_does_not_slow_another_viewer_and_is_cut_off()
    {
        // A 5.5 Mbit/s stream and small socket buffers: the stalled viewer's TCP window fills at once.
        await using var h = await RtspHarness.StartAsync(withViewers: false,
            o => o with { SocketSendBufferBytes = 32 * 1024, WriteTimeout = TimeSpan.FromSeconds(4) });
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264Busy, TestMedia.Aac).Start();
        await using var stalled = await RawRtspClient.ConnectAsync(h.Port, receiveBuffer: 4096);
        Assert.Equal(200, (await stalled.PlayTcpAsync(Base(h), 2)).StatusCode);
        // From here on the stalled client never reads again.

        await using var viewer = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await viewer.PlayTcpAsync(Base(h), 2)).StatusCode);
        var before = feeder.Fed(0);
        Assert.True(await viewer.PumpAsync(TimeSpan.FromSeconds(3.5)));
        var fed = feeder.Fed(0) - before;
        var markers = viewer.Channels[0].Markers;
        output.WriteLine($"fed {fed} video frames, healthy viewer got {markers} (plus cached GOP), audio {viewer.Channels[2].Markers}; " +
                         $"drops {h.Metric("pinhole_rtsp_viewer_dropped_frames_total")}");
        // Every frame fed while it watched reached the healthy viewer (the GOP cache only adds).
        Assert.True(markers >= fed - 2, $"healthy viewer got {markers} of {fed} frames");
        // The stalled viewer really was stalled: its queue overflowed and skipped frames, and the
        // per-viewer series shows which viewer it was ...
        Assert.True(h.Metric("pinhole_rtsp_viewer_dropped_frames_total") > 0);
        var perViewer = h.Metrics.Render().Split('\n').Where(l => l.StartsWith("pinhole_rtsp_viewer_dropped_frames{", StringComparison.Ordinal)).ToList();
        output.WriteLine(string.Join("\n", perViewer));
        Assert.Equal(2, perViewer.Count);
        // viewer="1" is the stalled one (set up first), viewer="2" the healthy one.
        Assert.Single(perViewer, l => l.Contains("viewer=\"1\"", StringComparison.Ordinal) && !l.EndsWith(" 0", StringComparison.Ordinal));
        Assert.Single(perViewer, l => l.Contains("viewer=\"2\"", StringComparison.Ordinal) && l.EndsWith(" 0", StringComparison.Ordinal));
        // ... and once its writes had been stuck longer than WriteTimeout the server hung up on it.
        await RtspServerProtocolTests.WaitUntil(() => h.Server.SessionCount == 1, seconds: 8);
        Assert.Single(h.Metrics.Render().Split('\n'), l => l.StartsWith("pinhole_rtsp_viewer_dropped_frames{", StringComparison.Ordinal));
        Assert.True(await viewer.PumpAsync(TimeSpan.FromSeconds(0.5)), "the healthy viewer keeps playing");
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_pause_while_a_media_write_is_blocked_is_answered_on_an_intact_stream_and_play_resumes()
    {
        // GStreamer's rtspsrc sends PAUSE while media is still flowing; a PAUSE that cut the write
        // under way short left half a packet on the wire, and the client read garbage or an EOF.
        await using var h = await RtspHarness.StartAsync(withViewers: false,
            o => o with { SocketSendBufferBytes = 32 * 1024, WriteTimeout = TimeSpan.FromSeconds(15) });
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264Busy).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port, receiveBuffer: 4096);
        Assert.Equal(200, (await c.PlayTcpAsync(Base(h), 1)).StatusCode);
        // Not reading: both socket buffers fill and the server's write of a frame blocks part-way.
        await Task.Delay(1500);
        var packetsBefore = c.Channels.TryGetValue(0, out var ch) ? ch.Packets : 0;

        // RequestAsync parses every interleaved frame on the way to the response: a torn packet
        // shows as a parse error, a lost connection as EndOfStreamException.
        var pause = await c.RequestAsync("PAUSE", Base(h));
        Assert.Equal(200, pause.StatusCode);
        output.WriteLine($"{c.Channels[0].Packets - packetsBefore} packets drained before the PAUSE response");
        Assert.True(c.Channels[0].Packets > packetsBefore, "the blocked write should complete before the response");

        // Paused: nothing more arrives, the connection stays up, and PLAY resumes on it.
        var paused = c.Channels[0].Packets;
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(0.5)));
        Assert.Equal(paused, c.Channels[0].Packets);
        Assert.Equal(200, (await c.RequestAsync("PLAY", Base(h))).StatusCode);
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1)));
        Assert.True(c.Channels[0].Packets > paused + 10, "media flows again after PLAY");
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task New_parameter_sets_of_the_same_codec_keep_the_session_and_another_codec_ends_it()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        var stream = h.Registry.GetOrAdd("gw1", "cam");
        var feeder = new StreamFeeder(stream, TestMedia.H264).Start();
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await c.PlayTcpAsync(Base(h), 1)).StatusCode);
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(0.5)));
        await feeder.DisposeAsync();

        // Same codec, a changed SPS (as after a camera resolution change): the session continues.
        var sps = TestMedia.H264.Info.ParameterSets[0].ToArray();
        sps[^1] ^= 0x01;
        var changed = TestMedia.H264 with { Info = TestMedia.H264.Info with { ParameterSets = [sps, TestMedia.H264.Info.ParameterSets[1]] } };
        feeder = new StreamFeeder(stream, changed).Start();
        var packetsBefore = c.Channels[0].Packets;
        Assert.True(await c.PumpAsync(TimeSpan.FromSeconds(1)));
        Assert.True(c.Channels[0].Packets > packetsBefore + 20);
        await feeder.DisposeAsync();

        // Another codec: RTSP 1.0 cannot re-describe a playing session, so the server ends it.
        await using var hevc = new StreamFeeder(stream, TestMedia.H265).Start();
        Assert.False(await c.PumpAsync(TimeSpan.FromSeconds(3)), "the server should close the session when the codec changes");
        await RtspServerProtocolTests.WaitUntil(() => h.Server.SessionCount == 0);
        // A new viewer describes the new codec and plays it.
        await using var d = await RawRtspClient.ConnectAsync(h.Port);
        var describe = await d.RequestAsync("DESCRIBE", Base(h));
        Assert.Contains("H265/90000", describe.BodyText);
    }

    private static byte[] ValidRequest(RtspHarness h) => Encoding.ASCII.GetBytes(
        $"DESCRIBE {Base(h)} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nUser-Agent: test\r\n\r\n");

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Every_prefix_of_a_request_then_close_leaves_the_server_serving()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var request = ValidRequest(h);
        for (var n = 0; n <= request.Length; n++)
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync("127.0.0.1", h.Port);
            var stream = tcp.GetStream();
            await stream.WriteAsync(request.AsMemory(0, n));
            tcp.Client.Shutdown(SocketShutdown.Send);
            // A whole request gets its answer even when the client half-closes right after it.
            var answer = await ReadAll(stream);
            if (n == request.Length) Assert.StartsWith("RTSP/1.0 200 OK", answer);
            else Assert.True(answer.Length == 0, $"prefix {n} answered: {answer}");
        }
        await RtspServerProtocolTests.WaitUntil(() => h.Server.ConnectionCount == 0);
        await AssertServing(h);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_request_split_at_every_byte_boundary_is_answered_once()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var request = ValidRequest(h);
        for (var split = 1; split < request.Length; split += 7)
        {
            using var tcp = new TcpClient { NoDelay = true };
            await tcp.ConnectAsync("127.0.0.1", h.Port);
            var s = tcp.GetStream();
            await s.WriteAsync(request.AsMemory(0, split));
            await Task.Delay(2);
            await s.WriteAsync(request.AsMemory(split));
            tcp.Client.Shutdown(SocketShutdown.Send);
            var answer = await ReadAll(s);
            Assert.StartsWith("RTSP/1.0 200 OK", answer);
            Assert.Equal(1, CountOccurrences(answer, "RTSP/1.0 "));
        }
    }

    public static TheoryData<string, string> HostileInputs => new()
    {
        { "garbage", "\x01\x02\x03 hello there\r\n\r\n" },
        { "no version", "OPTIONS *\r\nCSeq: 1\r\n\r\n" },
        { "header without colon", "OPTIONS * RTSP/1.0\r\nCSeq 1\r\n\r\n" },
        { "negative length", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -5\r\n\r\n" },
        { "huge length", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999999\r\n\r\n" },
        { "oversized header", "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: " + new string('a', 20_000) + "\r\n\r\n" },
        { "endless header line", "OPTIONS * RTSP/1.0\r\nX: " + new string('b', 100_000) },
        { "too many headers", "OPTIONS * RTSP/1.0\r\n" + string.Concat(Enumerable.Range(0, 500).Select(i => $"X-{i}: y\r\n")) + "\r\n" },
    };

    [Theory]
    [MemberData(nameof(HostileInputs))]
    public async Task Malformed_or_oversized_requests_get_400_and_the_connection_closes(string name, string input)
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", h.Port);
        var bytes = Encoding.Latin1.GetBytes(input);
        var stream = tcp.GetStream();
        try { await stream.WriteAsync(bytes); }
        catch (IOException) { /* the server may close before reading it all */ }
        var answer = await ReadAll(stream);
        output.WriteLine($"{name}: {answer.Split("\r\n")[0]}");
        Assert.StartsWith("RTSP/1.0 400 ", answer);
        await RtspServerProtocolTests.WaitUntil(() => h.Server.ConnectionCount == 0);
        await AssertServing(h);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Random_bytes_never_crash_the_server()
    {
        await using var h = await RtspHarness.StartAsync(withViewers: false);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var valid = ValidRequest(h);
        var rng = new Random(1234);
        for (var i = 0; i < 200; i++)
        {
            // Mutations of a valid request plus interleaved-frame lookalikes.
            var b = i % 3 == 0 ? new byte[rng.Next(1, 300)] : (byte[])valid.Clone();
            if (i % 3 == 0) rng.NextBytes(b);
            else for (var k = 0; k < 1 + rng.Next(4); k++) b[rng.Next(b.Length)] = (byte)rng.Next(256);
            if (i % 10 == 1) b[0] = (byte)'$';
            using var tcp = new TcpClient();
            await tcp.ConnectAsync("127.0.0.1", h.Port);
            var stream = tcp.GetStream();
            try
            {
                await stream.WriteAsync(b);
                tcp.Client.Shutdown(SocketShutdown.Send);
                var answer = await ReadAll(stream);
                Assert.True(answer.Length == 0 || answer.StartsWith("RTSP/1.0 ", StringComparison.Ordinal), answer);
            }
            catch (IOException) { }
        }
        await RtspServerProtocolTests.WaitUntil(() => h.Server.ConnectionCount == 0);
        await AssertServing(h);
    }

    private static async Task AssertServing(RtspHarness h)
    {
        await using var c = await RawRtspClient.ConnectAsync(h.Port);
        Assert.Equal(200, (await c.RequestAsync("OPTIONS", Base(h))).StatusCode);
    }

    private static async Task<string> ReadAll(NetworkStream stream)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ms = new MemoryStream();
        try { await stream.CopyToAsync(ms, cts.Token); }
        catch (IOException) { }
        return Encoding.Latin1.GetString(ms.ToArray());
    }

    private static int CountOccurrences(string s, string what)
    {
        var n = 0;
        for (var i = s.IndexOf(what, StringComparison.Ordinal); i >= 0; i = s.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
