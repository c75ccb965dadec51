using System.Diagnostics;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;
using Pinhole.Testing;

namespace Pinhole.Transport.Tests.Rtsp;

/// <summary>
/// Issue #21 against real servers: GStreamer's RTSP server offering only UDP, and VLC's RTSP output
/// (UDP only). Both answer 461 to a TCP-interleaved SETUP; both say RTCP BYE when their stream ends.
/// </summary>
[Trait("Category", "Integration")]
public class RtspInteropTests
{
    private static readonly RtspClientOptions Auto = new() { Transport = RtspLowerTransport.Tcp, TransportFallback = true };

    [RequiresFact(Needs.RtspCamera)]
    public async Task GStreamer_UDP_only_camera_refuses_TCP_with_461_and_auto_mode_plays_it_over_UDP()
    {
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { Protocols = "udp" });

        var client = new RtspClient(cam.Url, Auto);
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(25));
        var run = client.RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 30), run, Task.Delay(TimeSpan.FromSeconds(20)));

        // While that session keeps the (shared) stream prepared, a TCP-only client is refused with 461.
        // (Asked right after another client left, GStreamer may answer DESCRIBE with 503 while it
        // tears the stream down: a race of its own, which the supervisor's retry covers.)
        var tcp = new RtspClient(cam.Url, new RtspClientOptions { Transport = RtspLowerTransport.Tcp });
        var e = await Assert.ThrowsAsync<RtspClientException>(() => tcp.RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.True(e.StatusCode == 461, e.Message);

        await cts.CancelAsync();
        await run;

        Assert.Equal(RtspLowerTransport.Udp, client.PlayedTransport);
        Assert.True(sink.Count(0) >= 30, $"{sink.Count(0)} video units over UDP");
        Assert.Equal((MediaCodec.H264, 640, 360), (sink.Tracks[0].Codec, sink.Tracks[0].Width, sink.Tracks[0].Height));
        lock (sink) Assert.True(sink.Units[0].IsKeyframe);
        Assert.Empty(sink.Errors);
    }

    [RequiresTheory(Needs.RtspCamera)]
    [InlineData("udp", RtspLowerTransport.Udp)]
    [InlineData("any", RtspLowerTransport.Tcp)]
    public async Task GStreamer_camera_stopping_its_stream_says_BYE_and_the_session_ends_at_once(string protocols, RtspLowerTransport expected)
    {
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { Protocols = protocols });
        var client = new RtspClient(cam.Url, Auto);
        var sink = new RecordingSink();
        var run = client.RunAsync(sink, CancellationToken.None);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 10), run).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(run.IsCompleted, "the session ended before the camera stopped: " + run.Exception?.InnerException?.Message);
        Assert.Equal(expected, client.PlayedTransport);

        // peers/rtsp-camera.py on SIGTERM: EOS into the stream (rtpbin then sends SR+SDES+BYE), and
        // exit a second later. The session must end on the BYE, not when the connection closes.
        var sw = Stopwatch.StartNew();
        var stopping = cam.StopAsync();
        var e = await Assert.ThrowsAsync<RtspClientException>(() => run.WaitAsync(TimeSpan.FromSeconds(10)));
        var ended = sw.Elapsed;
        await stopping;

        Assert.Contains("the camera ended the stream (RTCP BYE)", e.Message, StringComparison.Ordinal);
        Assert.True(ended < TimeSpan.FromSeconds(1.5), ended.ToString());
    }

    [RequiresFact(Needs.Vlc)]
    public async Task Vlc_rtsp_output_refuses_TCP_with_461_auto_mode_plays_it_over_UDP_and_its_BYE_ends_the_session()
    {
        // An 8 s clip, played once from VLC's start; then VLC says BYE (naming SSRC 0) and sends nothing more.
        await using var vlc = await VlcRtspServer.StartAsync(TimeSpan.FromSeconds(8));
        var clipEnds = Stopwatch.StartNew();

        var tcp = new RtspClient(vlc.Url, new RtspClientOptions { Transport = RtspLowerTransport.Tcp });
        var e461 = await Assert.ThrowsAsync<RtspClientException>(() => tcp.RunAsync(new RecordingSink(), CancellationToken.None));
        Assert.True(e461.StatusCode == 461, e461.Message + "\n" + vlc.Log);

        var client = new RtspClient(vlc.Url, Auto);
        var sink = new RecordingSink();
        var run = client.RunAsync(sink, CancellationToken.None);
        await Task.WhenAny(sink.WaitAsync(s => s.Count(0) >= 25), run).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.True(sink.Count(0) >= 25, $"{sink.Count(0)} video units; VLC said: {vlc.Log}");
        Assert.Equal(RtspLowerTransport.Udp, client.PlayedTransport);
        Assert.Equal((MediaCodec.H264, 320, 240), (sink.Tracks[0].Codec, sink.Tracks[0].Width, sink.Tracks[0].Height));

        // Without the BYE the session would only end at the 10 s media timeout.
        var e = await Assert.ThrowsAsync<RtspClientException>(() => run.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("the camera ended the stream (RTCP BYE)", e.Message, StringComparison.Ordinal);
        int units;
        lock (sink) units = sink.Units.Count;
        Assert.True(clipEnds.Elapsed < TimeSpan.FromSeconds(8 + 5), $"ended {clipEnds.Elapsed} after VLC started an 8 s clip, {units} units");
        Assert.Empty(sink.Errors);
    }
}
