using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>Issue 3: several viewers on one camera, and a viewer that stops reading.</summary>
[Collection(EndToEnd.Collection)]
public class ViewerTests(ITestOutputHelper output)
{
    private static RtspCameraOptions Camera => new() { Video = CameraVideo.H264, Audio = CameraAudio.Aac, Width = 320, Height = 240, Gop = 25 };

    /// <summary>Noise at 2 Mbit/s: fills the relay's socket buffers for a stalled viewer within seconds.</summary>
    private static RtspCameraOptions HeavyCamera => new() { Video = CameraVideo.H264, Width = 640, Height = 360, Gop = 25, Pattern = "snow", BitrateKbps = 2000 };

    private static async Task<long> DroppedFramesAsync(HttpClient http, EndToEndStack stack)
    {
        var text = await http.GetStringAsync(new Uri(stack.HttpUri, "/metrics"));
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith("pinhole_rtsp_viewer_dropped_frames_total", StringComparison.Ordinal))
            ?? throw new InvalidOperationException("no pinhole_rtsp_viewer_dropped_frames_total in /metrics:\n" + text);
        return (long)double.Parse(line.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<T> PollAsync<T>(Func<Task<T>> read, Func<T, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var value = await read();
            if (done(value) || DateTime.UtcNow >= deadline) return value;
            await Task.Delay(200);
        }
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task Three_viewers_at_once_all_decode()
    {
        await using var stack = await EndToEndStack.StartAsync(output, Camera);
        var first = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(45));
        Assert.True(first.Succeeded, first + "\n" + stack.Logs);

        var probes = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ =>
            Ffprobe.ProbeAsync(stack.RtspUrl, new ProbeOptions { VideoFrames = 75, Timeout = TimeSpan.FromSeconds(40) })));
        foreach (var probe in probes)
        {
            output.WriteLine($"viewer: {probe.Video?.CodecName} {probe.Video?.FramesDecoded} video frames, {probe.Audio?.CodecName} {probe.Audio?.FramesDecoded} audio frames in {probe.Elapsed.TotalSeconds:0.0} s");
            Assert.True(probe.Succeeded, probe + "\n" + stack.Logs);
            Assert.Equal("h264", probe.Video?.CodecName);
            Assert.True(probe.Video!.FramesDecoded >= 75, probe.ToString());
            Assert.Equal("aac", probe.Audio?.CodecName);
            Assert.True(probe.Audio!.FramesDecoded > 0, probe.ToString());
            Assert.Empty(probe.DecoderErrors);
        }
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task A_viewer_that_stops_reading_does_not_slow_another_viewer()
    {
        const int frames = 125; // 5 s of video at 25 fps
        await using var stack = await EndToEndStack.StartAsync(output, HeavyCamera);
        var warm = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(45));
        Assert.True(warm.Succeeded, warm + "\n" + stack.Logs);

        // Baseline: how long one viewer needs for 5 s of video on this machine, nobody stalled.
        var baseline = await Ffprobe.ProbeAsync(stack.RtspUrl, new ProbeOptions { VideoFrames = frames, Timeout = TimeSpan.FromSeconds(40) });
        Assert.True(baseline.Succeeded && baseline.Video!.FramesDecoded >= frames, baseline.ToString());

        using var stalled = await StalledRtspViewer.PlayAsync("127.0.0.1", stack.RtspPort, $"/{EndToEnd.Device}/{EndToEnd.CameraName}", EndToEnd.ViewerUser, EndToEnd.ViewerPassword);
        Assert.Equal(200, stalled.PlayStatus);
        // Wait until the relay can no longer write to it and skips its frames (its own metric says so).
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var droppedAtStall = await PollAsync(() => DroppedFramesAsync(http, stack), d => d > 0, TimeSpan.FromSeconds(20));
        Assert.True(droppedAtStall > 0, $"the relay never skipped frames for the viewer that stopped reading ({stalled.Unread} bytes unread)\n{stack.Logs}");

        var during = await Ffprobe.ProbeAsync(stack.RtspUrl, new ProbeOptions { VideoFrames = frames, Timeout = TimeSpan.FromSeconds(40) });
        output.WriteLine($"{frames} frames: baseline {baseline.Elapsed.TotalSeconds:0.00} s, with a stalled viewer ({stalled.Unread} bytes unread, connected {stalled.IsConnected}) {during.Elapsed.TotalSeconds:0.00} s");
        Assert.True(during.Succeeded, during + "\n" + stack.Logs);
        Assert.True(during.Video!.FramesDecoded >= frames, during.ToString());
        Assert.Empty(during.DecoderErrors);
        // ~the full frame rate: no slower than the baseline plus scheduling noise. A viewer held back
        // by the stalled one would get nothing at all or fall to its pace.
        Assert.True(during.Elapsed <= baseline.Elapsed * 1.3 + TimeSpan.FromSeconds(1.5),
            $"{frames} frames took {during.Elapsed.TotalSeconds:0.00} s with a stalled viewer vs {baseline.Elapsed.TotalSeconds:0.00} s without");
        var droppedAfter = await DroppedFramesAsync(http, stack);
        output.WriteLine($"frames skipped for the stalled viewer: {droppedAtStall} when measuring began, {droppedAfter} after");
        Assert.True(droppedAfter > droppedAtStall, $"the stalled viewer stopped being skipped ({droppedAtStall} -> {droppedAfter}): was it still stalled while we measured?");
        Assert.True(stalled.IsConnected, "the relay dropped the stalled viewer within seconds (it should only skip its frames until the write timeout)");
    }
}
