using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Harness.Tests;

public class RtspCameraTests(ITestOutputHelper output)
{
    private const Needs CameraAndFfmpeg = Needs.RtspCamera | Needs.Ffmpeg;

    [RequiresTheory(CameraAndFfmpeg)]
    [InlineData(CameraVideo.H264, CameraAudio.None, "h264", null)]
    [InlineData(CameraVideo.H265, CameraAudio.None, "hevc", null)]
    [InlineData(CameraVideo.H264, CameraAudio.Aac, "h264", "aac")]
    [InlineData(CameraVideo.H264, CameraAudio.Pcma, "h264", "pcm_alaw")]
    [InlineData(CameraVideo.H264, CameraAudio.Pcmu, "h264", "pcm_mulaw")]
    public async Task Ffprobe_decodes_25_frames_of_the_camera(CameraVideo video, CameraAudio audio, string videoCodec, string? audioCodec)
    {
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Video = video, Audio = audio, Width = 320, Height = 240 });

        var probe = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 25 });
        output.WriteLine(probe.ToString());

        Assert.True(probe.Succeeded, probe.ToString());
        Assert.Equal(videoCodec, probe.Video?.CodecName);
        Assert.Equal((320, 240), (probe.Video!.Width, probe.Video.Height));
        Assert.True(probe.Video.FramesDecoded >= 25, probe.ToString());
        Assert.Equal(audioCodec, probe.Audio?.CodecName);
        if (audioCodec is not null)
            Assert.True(probe.Audio!.FramesDecoded > 0, probe.ToString());
        Assert.Empty(probe.DecoderErrors);
    }

    [RequiresFact(CameraAndFfmpeg)]
    public async Task Ffprobe_reads_the_camera_over_udp()
    {
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 320, Height = 240 });
        var probe = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { Transport = RtspTransport.Udp, VideoFrames = 25 });
        output.WriteLine(probe.ToString());
        Assert.True(probe.Succeeded, probe.ToString());
        // With -rtsp_transport udp given explicitly ffmpeg does not fall back to TCP, so frames mean UDP worked.
        Assert.True(probe.Video!.FramesDecoded >= 25, probe.ToString());
        Assert.Empty(probe.DecoderErrors);
    }

    [RequiresFact(CameraAndFfmpeg)]
    public async Task Digest_auth_admits_the_right_password_and_refuses_a_wrong_one()
    {
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 320, Height = 240, User = "viewer", Password = "pa ss:word" });
        Assert.DoesNotContain("viewer", camera.Url.ToString());

        var right = await Ffprobe.ProbeAsync(camera.UrlWithCredentials, new ProbeOptions { VideoFrames = 10 });
        var wrong = await Ffprobe.ProbeAsync(camera.UrlWith("viewer", "wrong"), new ProbeOptions { VideoFrames = 10 });
        var none = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 10 });
        output.WriteLine(right.ToString());
        output.WriteLine(wrong.ToString());

        Assert.True(right.Succeeded, right.ToString());
        Assert.True(right.Video!.FramesDecoded >= 10, right.ToString());
        Assert.False(wrong.Succeeded, wrong.ToString());
        Assert.Empty(wrong.Streams);
        Assert.Contains("401", wrong.Log);
        Assert.False(none.Succeeded, none.ToString());
        Assert.Contains("401", none.Log);
    }

    [RequiresFact(CameraAndFfmpeg)]
    public async Task Killed_camera_comes_back_on_the_same_url()
    {
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 320, Height = 240 });
        var url = camera.Url;

        camera.Kill();
        Assert.False(camera.IsRunning);
        var whileDown = await Ffprobe.ProbeAsync(url, new ProbeOptions { VideoFrames = 0, Timeout = TimeSpan.FromSeconds(10) });
        Assert.False(whileDown.Succeeded, whileDown.ToString());

        await camera.StartAgainAsync();
        Assert.Equal(url, camera.Url);
        var after = await Ffprobe.ProbeAsync(url, new ProbeOptions { VideoFrames = 10 });
        Assert.True(after.Succeeded, after.ToString());
        Assert.Equal("h264", after.Video?.CodecName);
    }

    [RequiresFact(CameraAndFfmpeg)]
    public async Task Camera_gop_option_sets_the_keyframe_interval_seen_in_packets()
    {
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 320, Height = 240, Fps = 25, Gop = 10 });

        var packets = await Ffprobe.ReadPacketsAsync(camera.Url, 35);
        var keyframes = packets.Select((p, i) => (p, i)).Where(x => x.p.IsKeyframe).Select(x => x.i).ToList();

        Assert.Equal(35, packets.Count);
        Assert.All(packets, p => Assert.Equal("video", p.CodecType));
        Assert.Equal(0, keyframes[0]); // a new session starts on a keyframe
        Assert.Equal([0, 10, 20, 30], keyframes);
        var times = packets.Where(p => p.PtsTime is not null).Select(p => p.PtsTime!.Value).ToList();
        Assert.True(times.Zip(times.Skip(1)).All(t => t.Second > t.First), "PTS must increase");
    }

    [RequiresFact(CameraAndFfmpeg)]
    public async Task Audio_only_camera_decodes_audio_frames()
    {
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.None, Audio = CameraAudio.Pcmu });
        var probe = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 25 });
        output.WriteLine(probe.ToString());
        Assert.True(probe.Succeeded, probe.ToString());
        Assert.Null(probe.Video);
        Assert.Equal("pcm_mulaw", probe.Audio?.CodecName);
        Assert.Equal(8000, probe.Audio!.SampleRate);
        Assert.True(probe.Audio.FramesDecoded >= 25, probe.ToString());
        Assert.Empty(probe.DecoderErrors);
    }
}
