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

    [Theory]
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
}
