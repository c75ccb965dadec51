using Pinhole.Testing;
using Pinhole.Transport.Media;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>Real clients (ffprobe) play streams the test feeds into the hub, over TCP and UDP.</summary>
[Trait("Peer", "ffmpeg")]
public class RtspServerPlaybackTests(ITestOutputHelper output)
{
    private static void AssertDecoded(List<ProbedStream> streams, string errors, string codecType, string codec, int minFrames, int width = 0, int height = 0, int sampleRate = 0)
    {
        var s = streams.FirstOrDefault(x => x.CodecType == codecType);
        Assert.True(s is not null, $"no {codecType} stream; ffprobe said: {errors}");
        Assert.Equal(codec, s.CodecName);
        if (width > 0) Assert.Equal((width, height), (s.Width, s.Height));
        if (sampleRate > 0) Assert.Equal(sampleRate, s.SampleRate);
        Assert.True(s.Frames >= minFrames, $"{s.Frames} {codec} frames decoded, expected at least {minFrames}; ffprobe said: {errors}");
    }

    private static void AssertNoDecoderErrors(string errors) =>
        Assert.True(errors.Trim().Length == 0, "ffprobe reported errors:\n" + errors);

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("tcp")]
    [InlineData("udp")]
    public async Task H264_plays_in_ffprobe_with_the_right_size_and_no_decoder_errors(string transport)
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var (streams, errors, code) = await FfProbe.ProbeAsync(h.Url("gw1/cam"), transport, 2);
        output.WriteLine(string.Join("\n", streams) + "\n" + errors);
        Assert.Equal(0, code);
        AssertNoDecoderErrors(errors);
        // 2 s at 25 fps; the cached GOP start and timing jitter make it approximate.
        AssertDecoded(streams, errors, "video", "h264", 40, TestMedia.Width, TestMedia.Height);
    }

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("tcp")]
    [InlineData("udp")]
    public async Task H265_plays_in_ffprobe(string transport)
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H265).Start();
        var (streams, errors, code) = await FfProbe.ProbeAsync(h.Url("gw1/cam"), transport, 2);
        output.WriteLine(string.Join("\n", streams) + "\n" + errors);
        Assert.Equal(0, code);
        AssertNoDecoderErrors(errors);
        AssertDecoded(streams, errors, "video", "hevc", 40, TestMedia.Width, TestMedia.Height);
    }

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("tcp")]
    [InlineData("udp")]
    public async Task H264_with_AAC_plays_both_tracks(string transport)
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264, TestMedia.Aac).Start();
        var (streams, errors, code) = await FfProbe.ProbeAsync(h.Url("gw1/cam"), transport, 2);
        output.WriteLine(string.Join("\n", streams) + "\n" + errors);
        Assert.Equal(0, code);
        AssertNoDecoderErrors(errors);
        AssertDecoded(streams, errors, "video", "h264", 40, TestMedia.Width, TestMedia.Height);
        // 48 kHz / 1024 samples per frame = 46.9 frames per second.
        AssertDecoded(streams, errors, "audio", "aac", 60, sampleRate: 48_000);
    }

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("alaw", "pcm_alaw", "udp")]
    [InlineData("mulaw", "pcm_mulaw", "tcp")]
    public async Task G711_plays_alongside_H264(string which, string codec, string transport)
    {
        await using var h = await RtspHarness.StartAsync();
        var audio = which == "alaw" ? TestMedia.Alaw : TestMedia.Mulaw;
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264, audio).Start();
        var (streams, errors, code) = await FfProbe.ProbeAsync(h.Url("gw1/cam"), transport, 2);
        output.WriteLine(string.Join("\n", streams) + "\n" + errors);
        Assert.Equal(0, code);
        AssertNoDecoderErrors(errors);
        AssertDecoded(streams, errors, "video", "h264", 40);
        // 20 ms packets: about 50 per second.
        AssertDecoded(streams, errors, "audio", codec, 60, sampleRate: 8000);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Several_viewers_at_once_all_decode_the_stream()
    {
        await using var h = await RtspHarness.StartAsync();
        await using var feeder = new StreamFeeder(h.Registry.GetOrAdd("gw1", "cam"), TestMedia.H264).Start();
        var probes = new[] { "tcp", "udp", "tcp" }.Select(t => FfProbe.ProbeAsync(h.Url("gw1/cam"), t, 2)).ToArray();
        var results = await Task.WhenAll(probes);
        foreach (var (streams, errors, code) in results)
        {
            output.WriteLine(string.Join("\n", streams) + "\n" + errors);
            Assert.Equal(0, code);
            AssertNoDecoderErrors(errors);
            AssertDecoded(streams, errors, "video", "h264", 40, TestMedia.Width, TestMedia.Height);
        }
        Assert.True(h.Metric("pinhole_rtsp_sessions_total") >= 3);
        Assert.True(h.Metric("pinhole_rtsp_frames_sent_total") >= 120);
        Assert.True(h.Metric("pinhole_rtsp_bytes_sent_total") > 10_000);
    }
}
