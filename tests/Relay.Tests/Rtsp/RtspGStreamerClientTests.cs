using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>GStreamer's rtspsrc (a second, independent RTSP client with its own Digest code) plays the relay.</summary>
[Trait("Peer", "gstreamer")]
public class RtspGStreamerClientTests(ITestOutputHelper output)
{
    [RequiresToolsTheory("gst-launch-1.0", "ffmpeg")]
    [InlineData("tcp", "h264")]
    [InlineData("udp", "h264")]
    [InlineData("tcp", "h265")]
    public async Task Rtspsrc_authenticates_and_decodes_frames(string protocol, string codec)
    {
        await using var h = await RtspHarness.StartAsync(output: output);
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), codec == "h264" ? TestMedia.H264 : TestMedia.H265).Start();
        // 40 decoded pictures, then end of stream; an auth or decode failure is a non-zero exit.
        var pipeline = $"-q rtspsrc location=rtsp://127.0.0.1:{h.Port}/gw1/cam user-id={RtspHarness.User} user-pw={RtspHarness.Password} protocols={protocol} latency=100 "
            + $"! rtp{codec}depay ! {codec}parse ! avdec_{codec} ! identity eos-after=40 ! fakesink sync=false";
        var (code, stdout, stderr) = await Task.Run(() => TestMedia.Run("gst-launch-1.0", "-e " + pipeline, 30_000));
        output.WriteLine(stdout + stderr);
        Assert.True(code == 0, $"gst-launch exit {code}:\n{stdout}{stderr}");
        Assert.DoesNotContain("ERROR", stderr + stdout);
        Assert.True(h.Metric("pinhole_rtsp_frames_sent_total") >= 40);
        Assert.Equal(0, h.Metric("pinhole_rtsp_auth_failures_total"));
    }
}
