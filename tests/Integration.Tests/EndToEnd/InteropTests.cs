using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using OpenQA.Selenium;
using Command = Pinhole.Testing.Command;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue #21, RTSP interop: pictures of several slices (x264 slices=2, and the RTP marker after every
/// slice as live555ProxyServer sends it) and B-frames (x264 bframes=2) through the real path: GStreamer
/// camera → pinhole-edge → uplink → pinhole-relay → ffprobe/ffmpeg (RTSP) and the browser feed (fMP4).
/// </summary>
[Collection(EndToEnd.Collection)]
public class InteropTests(ITestOutputHelper output)
{
    private const double FrameSeconds = 1.0 / 25;

    /// <summary>One decoded frame as ffprobe reports it (presentation order).</summary>
    private sealed record Frame(double Pts, string PictType);

    // ffprobe -show_frames over the first `packets` packets (video only), in the order the decoder outputs them.
    private static async Task<List<Frame>> ReadFramesAsync(string input, int packets, params string[] inputOptions)
    {
        var result = await Command.RunAsync("ffprobe",
            ["-hide_banner", "-loglevel", "error", .. inputOptions, "-select_streams", "v", "-read_intervals", $"%+#{packets}",
             "-show_entries", "frame=pts_time,pict_type", "-of", "csv=p=0", input], TimeSpan.FromSeconds(25));
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("", result.StandardError.Trim());
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(','))
            .Where(f => f.Length >= 2 && f[0] != "N/A")
            .Select(f => new Frame(double.Parse(f[0], CultureInfo.InvariantCulture), f[1]))
            .ToList();
    }

    // ffmpeg's RTSP client gives the very first packet no PTS (N/A); every later one must have one.
    private static List<double> Timestamps(IReadOnlyList<ProbePacket> packets)
    {
        Assert.All(packets.Skip(1), p => Assert.NotNull(p.PtsTime));
        return packets.Where(p => p.PtsTime is not null).Select(p => p.PtsTime!.Value).ToList();
    }

    private static void AssertOneFramePerInterval(IReadOnlyList<double> sortedPts, string why)
    {
        for (var i = 1; i < sortedPts.Count; i++)
        {
            var step = sortedPts[i] - sortedPts[i - 1];
            Assert.True(Math.Abs(step - FrameSeconds) < 0.002, $"PTS {sortedPts[i - 1]:0.0000} then {sortedPts[i]:0.0000}: a frame lost or doubled\n{why}");
        }
    }

    [RequiresTheory(Needs.RtspCamera | Needs.Ffmpeg)]
    [InlineData(false)] // rtph264pay: the marker after the last slice of a picture
    [InlineData(true)]  // like live555ProxyServer: the marker after every slice, SPS/PPS before every IDR slice
    public async Task Two_slice_pictures_reach_an_RTSP_viewer_whole_one_frame_per_timestamp(bool markEverySlice)
    {
        await using var stack = await EndToEndStack.StartAsync(output, new RtspCameraOptions
        {
            Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25, Slices = 2, MarkSlices = markEverySlice,
        });
        var probe = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(30), frames: 50);
        var why = probe + "\n" + stack.Logs;
        output.WriteLine($"slices=2 mark-every-slice={markEverySlice}: {probe.Video?.FramesDecoded} frames from {probe.Video?.PacketsRead} packets, {probe.Elapsed.TotalSeconds:0.0} s");
        Assert.True(probe.Succeeded, why);
        Assert.True(probe.Video!.FramesDecoded >= 50, why);
        // A viewer that starts at the cached GOP gets whole pictures: no concealed half keyframe.
        Assert.Empty(probe.DecoderErrors);

        var packets = await Ffprobe.ReadPacketsAsync(stack.RtspUrl, 40, options: new ProbeOptions { Timeout = TimeSpan.FromSeconds(20) });
        var pts = Timestamps(packets);
        why = string.Join(' ', pts.Select(p => p.ToString("0.000", CultureInfo.InvariantCulture))) + "\n" + stack.Logs;
        Assert.True(packets[0].IsKeyframe, why);
        Assert.Equal(pts.Count, pts.Distinct().Count()); // one access unit per timestamp, no half pictures
        AssertOneFramePerInterval(pts, why); // and in order: no B-frames here
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task B_frame_camera_reaches_an_RTSP_viewer_with_no_frame_lost_or_out_of_order()
    {
        await using var stack = await EndToEndStack.StartAsync(output, new RtspCameraOptions { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25, BFrames = 2 });
        var probe = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(30), frames: 50);
        var why = probe + "\n" + stack.Logs;
        Assert.True(probe.Succeeded, why);
        Assert.Empty(probe.DecoderErrors);

        // RTP timestamps are PTS: in decode order they go back at every B-frame, and sorted they are
        // every frame exactly once.
        var packets = await Ffprobe.ReadPacketsAsync(stack.RtspUrl, 60, options: new ProbeOptions { Timeout = TimeSpan.FromSeconds(20) });
        var pts = Timestamps(packets);
        why = string.Join(' ', pts.Select(p => p.ToString("0.000", CultureInfo.InvariantCulture))) + "\n" + stack.Logs;
        Assert.True(packets[0].IsKeyframe, why);
        Assert.Contains(pts.Zip(pts.Skip(1)), p => p.Second < p.First);
        AssertOneFramePerInterval(pts.Order().ToList(), why);

        // Decoded, they come out in presentation order with B pictures among them.
        var frames = await ReadFramesAsync(stack.RtspUrl.OriginalString, 60, "-rtsp_transport", "tcp");
        var shown = frames.Select(f => f.Pts).ToList();
        why = string.Join(' ', frames.Select(f => f.PictType + f.Pts.ToString("0.000", CultureInfo.InvariantCulture))) + "\n" + stack.Logs;
        output.WriteLine($"RTSP: {frames.Count} frames decoded, {frames.Count(f => f.PictType == "B")} B: {string.Join(' ', frames.Take(12).Select(f => f.PictType))} …");
        Assert.True(frames.Count >= 55, why);
        Assert.Contains(frames, f => f.PictType == "B");
        AssertOneFramePerInterval(shown, why);
    }

    private static async Task<CookieContainer> LogInAsync(EndToEndStack stack)
    {
        var cookies = new CookieContainer();
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies, UseCookies = true }) { BaseAddress = stack.HttpUri };
        using var r = await client.PostAsync("/login", new FormUrlEncodedContent([new("user", EndToEnd.ViewerUser), new("password", EndToEnd.ViewerPassword)]));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        return cookies;
    }

    private static async Task<(WebSocketMessageType Type, byte[] Data)> ReceiveAsync(WebSocket ws, CancellationToken ct)
    {
        using var ms = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var r = await ws.ReceiveAsync(buffer, ct);
            ms.Write(buffer, 0, r.Count);
            if (r.EndOfMessage) return (r.MessageType, ms.ToArray());
        }
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task B_frame_camera_reaches_the_browser_feed_as_fMP4_that_decodes_in_presentation_order()
    {
        await using var stack = await EndToEndStack.StartAsync(output, new RtspCameraOptions { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25, BFrames = 2 });
        // The relay has the stream once an RTSP viewer can play it.
        var probe = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(30), frames: 10);
        Assert.True(probe.Succeeded, probe + "\n" + stack.Logs);

        using var ws = new ClientWebSocket();
        ws.Options.Cookies = await LogInAsync(stack);
        ws.Options.SetRequestHeader("Origin", stack.HttpUri.GetLeftPart(UriPartial.Authority));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{stack.HttpPort}/play/{EndToEnd.Device}/{EndToEnd.CameraName}/ws"), timeout.Token);
        var (type, json) = await ReceiveAsync(ws, timeout.Token);
        Assert.Equal(WebSocketMessageType.Text, type);
        using (var init = JsonDocument.Parse(json)) Assert.Equal("init", init.RootElement.GetProperty("type").GetString());
        var file = Path.Combine(stack.Dir, "play.mp4");
        await using (var mp4 = File.Create(file))
        {
            // The init segment, then 75 fragments (3 s): one access unit each, in decode order.
            for (var i = 0; i < 76; i++)
            {
                var (kind, data) = await ReceiveAsync(ws, timeout.Token);
                Assert.Equal(WebSocketMessageType.Binary, kind);
                await mp4.WriteAsync(data, timeout.Token);
            }
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);

        var decode = await Command.RunAsync("ffmpeg", ["-nostdin", "-v", "error", "-i", file, "-f", "null", "-"], TimeSpan.FromSeconds(20));
        Assert.True(decode.Succeeded, decode.ToString());
        Assert.Equal("", decode.StandardError.Trim());
        var frames = await ReadFramesAsync(file, 1000);
        var why = string.Join(' ', frames.Select(f => f.PictType + f.Pts.ToString("0.000", CultureInfo.InvariantCulture))) + "\n" + stack.Logs;
        output.WriteLine($"fMP4: {frames.Count} frames, {frames.Count(f => f.PictType == "B")} B: {string.Join(' ', frames.Take(12).Select(f => f.PictType))} …");
        Assert.Equal(75, frames.Count);
        Assert.Equal("I", frames[0].PictType);
        Assert.Contains(frames, f => f.PictType == "B");
        AssertOneFramePerInterval(frames.Select(f => f.Pts).ToList(), why);
    }

    [RequiresFact(Needs.Chromium | Needs.RtspCamera)]
    public async Task Chromium_plays_a_B_frame_camera_smoothly()
    {
        await using var stack = await EndToEndStack.StartAsync(output, new RtspCameraOptions { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25, BFrames = 2 });
        using var browser = Chromium.Start();
        browser.Navigate(new Uri(stack.HttpUri, $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}"));
        browser.Driver.FindElement(By.Name("user")).SendKeys(EndToEnd.ViewerUser);
        browser.Driver.FindElement(By.Name("password")).SendKeys(EndToEnd.ViewerPassword);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync("window.pinhole && window.pinhole.state === 'live'", TimeSpan.FromSeconds(30));
        const string Quality = "const q = document.getElementById('video').getVideoPlaybackQuality(); return [q.totalVideoFrames, q.droppedVideoFrames];";
        var before = browser.Execute<IReadOnlyCollection<object>>(Quality).Select(o => Convert.ToInt64(o, CultureInfo.InvariantCulture)).ToArray();
        await Task.Delay(8000);
        var after = browser.Execute<IReadOnlyCollection<object>>(Quality).Select(o => Convert.ToInt64(o, CultureInfo.InvariantCulture)).ToArray();
        var lag = browser.Execute<double>("const v = document.getElementById('video'); return v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 99;");
        var error = browser.Execute<object?>("const e = document.getElementById('video').error; return e ? e.code + ' ' + e.message : null;");
        output.WriteLine($"Chromium, B-frames: {after[0] - before[0]} frames in 8 s, {after[1] - before[1]} dropped, {lag:0.00} s behind, error {error ?? "none"}");
        Assert.Null(error);
        Assert.True(after[0] - before[0] > 8 * 25 * 0.8, $"{after[0] - before[0]} frames in 8 s\n{stack.Logs}");
        Assert.True(lag < 1.5, $"{lag:0.00} s behind");
    }
}
