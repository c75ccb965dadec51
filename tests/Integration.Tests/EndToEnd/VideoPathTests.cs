using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 3, the whole video path with real programs: GStreamer RTSP camera → pinhole-edge (child
/// process) → ws uplink → pinhole-relay (child process) → ffprobe/ffmpeg as the RTSP viewer.
/// </summary>
[Collection(EndToEnd.Collection)]
public class VideoPathTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => ["h264+aac", "h265", "h264+pcma", "h264+digest"];

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task A_camera_that_offers_only_UDP_comes_up_over_UDP_with_the_default_auto_transport()
    {
        // Issue #21: GStreamer with protocols=udp answers 461 to a TCP SETUP, as VLC and cheap cameras do.
        // edge.json has no transport key: auto.
        await using var stack = await EndToEndStack.StartAsync(output, new RtspCameraOptions { Width = 320, Height = 240, Gop = 25, Protocols = "udp" });

        var probe = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(30), frames: 25);
        var why = probe + "\n" + stack.Logs;
        Assert.True(probe.Succeeded, why);
        Assert.True(probe.Video!.FramesDecoded >= 25, why);
        Assert.Empty(probe.DecoderErrors);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{stack.WebPort}") };
        var metrics = await http.GetStringAsync("/metrics");
        Assert.Contains($"pinhole_camera_transport{{camera=\"{EndToEnd.CameraName}\",transport=\"udp\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"pinhole_camera_transport{{camera=\"{EndToEnd.CameraName}\",transport=\"tcp\"}} 0", metrics, StringComparison.Ordinal);
        Assert.Contains("trying UDP", stack.Edge!.Output, StringComparison.Ordinal);

        // The page's status table shows it too (the camera pipeline's status line).
        using var handler = new HttpClientHandler { CookieContainer = new System.Net.CookieContainer(), AllowAutoRedirect = false };
        using var page = new HttpClient(handler) { BaseAddress = http.BaseAddress };
        using var login = await page.PostAsync("/login", new FormUrlEncodedContent([new("password", "edge-page-password")]));
        Assert.Equal(System.Net.HttpStatusCode.Redirect, login.StatusCode);
        var status = System.Text.Json.Nodes.JsonNode.Parse(await page.GetStringAsync("/api/status"))!["pipelines"]!.AsArray()
            .Single(p => p!["name"]!.GetValue<string>() == "camera/" + EndToEnd.CameraName)!["status"]!.GetValue<string>();
        Assert.Equal("playing 320x240 H264 over UDP", status);
    }

    [RequiresTheory(Needs.RtspCamera | Needs.Ffmpeg)]
    [MemberData(nameof(Cases))]
    public async Task Viewer_decodes_the_camera_through_edge_and_relay(string variant)
    {
        var options = variant switch
        {
            "h264+aac" => new RtspCameraOptions { Video = CameraVideo.H264, Audio = CameraAudio.Aac, Width = 320, Height = 240, Gop = 25 },
            "h265" => new RtspCameraOptions { Video = CameraVideo.H265, Width = 320, Height = 240, Gop = 25 },
            "h264+pcma" => new RtspCameraOptions { Video = CameraVideo.H264, Audio = CameraAudio.Pcma, Width = 640, Height = 360, Gop = 25 },
            "h264+digest" => new RtspCameraOptions { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25, User = "camuser", Password = "cam-secret" },
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        };
        var (videoCodec, audioCodec) = variant switch
        {
            "h264+aac" => ("h264", "aac"),
            "h265" => ("hevc", (string?)null),
            "h264+pcma" => ("h264", "pcm_alaw"),
            _ => ("h264", null),
        };

        await using var stack = await EndToEndStack.StartAsync(output, options);
        if (options.User is not null)
        {
            // The camera really demands its credentials: without them a viewer gets nothing.
            var refused = await Ffprobe.ProbeAsync(stack.Camera.Url, new ProbeOptions { VideoFrames = 1, Timeout = TimeSpan.FromSeconds(10) });
            Assert.False(refused.Succeeded, "the camera played without credentials: " + refused);
            Assert.Contains("camuser:cam-secret@", stack.CameraSource, StringComparison.Ordinal);
        }

        var probe = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, TimeSpan.FromSeconds(45), frames: 50);
        output.WriteLine($"{variant}: {probe.Video?.CodecName} {probe.Video?.Width}x{probe.Video?.Height}, {probe.Video?.FramesDecoded} video frames, " +
            $"audio {probe.Audio?.CodecName} {probe.Audio?.SampleRate} Hz {probe.Audio?.FramesDecoded} frames, {probe.Elapsed.TotalSeconds:0.0} s");
        var why = probe + "\n" + stack.Logs;
        Assert.True(probe.Succeeded, why);
        Assert.Equal(videoCodec, probe.Video?.CodecName);
        Assert.Equal((options.Width, options.Height), (probe.Video!.Width, probe.Video.Height));
        Assert.True(probe.Video.FramesDecoded >= 50, why);
        Assert.Empty(probe.DecoderErrors);
        if (options.Password is not null)
        {
            // Secrets never go in logs: the camera's password is in edge.json only.
            Assert.DoesNotContain(options.Password, stack.Edge!.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(options.Password, stack.Relay!.Output, StringComparison.Ordinal);
        }
        if (audioCodec is null)
            Assert.Null(probe.Audio);
        else
        {
            Assert.Equal(audioCodec, probe.Audio?.CodecName);
            Assert.True(probe.Audio!.FramesDecoded > 0, "no audio frames decoded\n" + why);
        }
    }
}
