using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtsp;

[Trait("Category", "Integration")]
public class RtspClientIntegrationTests
{
    private static async Task<RecordingSink> PlayAsync(string url, Func<RecordingSink, bool> enough, RtspClientOptions? options = null)
    {
        var sink = new RecordingSink();
        var client = new RtspClient(new Uri(url), options);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var run = client.RunAsync(sink, cts.Token);
        var done = await Task.WhenAny(sink.WaitAsync(enough), run, Task.Delay(TimeSpan.FromSeconds(15)));
        await cts.CancelAsync();
        await run; // surfaces a session failure
        Assert.True(done != run, "the session ended before enough media arrived");
        Assert.Empty(sink.Errors);
        return sink;
    }

    [Fact]
    public async Task H264_and_AAC_over_TCP_deliver_keyframe_first_video_and_audio_units()
    {
        await using var cam = await RtspCameraProcess.StartAsync("--codec", "h264", "--audio", "aac");
        var sink = await PlayAsync(cam.Url(), s => s.Count(0) >= 30 && s.Count(1) >= 20);
        var tracks = sink.Tracks;
        Assert.Equal(MediaCodec.H264, tracks[0].Codec);
        Assert.Equal((640, 360), (tracks[0].Width, tracks[0].Height));
        Assert.Equal(MediaCodec.Aac, tracks[1].Codec);
        Assert.Equal(48000, tracks[1].SampleRate);
        var video = sink.Units.Where(u => u.Track == 0).ToList();
        Assert.True(video[0].IsKeyframe);
        // 25 fps at 90 kHz: consecutive frames 3600 ticks apart.
        Assert.Equal(3600, video[1].Pts - video[0].Pts);
    }
}
