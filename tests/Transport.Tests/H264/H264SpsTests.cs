using System.Buffers;
using Pinhole.Testing;
using Pinhole.Transport.H264;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.H264;

public class H264SpsTests
{
    [Theory]
    // GStreamer x264 constrained baseline 640x360 (cropped from 368 rows), from the capture's SDP.
    [InlineData("6742c01eda0280bfe5c05a83030352800000030080000019478b1750", 640, 360, 66)]
    // ffmpeg libx264 baseline 1280x720.
    [InlineData("6742c01fd9005005bb011000000300100000030320f1832480", 1280, 720, 66)]
    // ffmpeg libx264 high 1920x1080 (cropped from 1088, chroma_format_idc present).
    [InlineData("67640028acd940780227e5c044000003000400000300c83c60c658", 1920, 1080, 100)]
    public void Real_SPS_give_the_picture_size(string hex, int width, int height, int profile)
    {
        var sps = H264Sps.Parse(Convert.FromHexString(hex));
        Assert.Equal((width, height, profile), (sps.Width, sps.Height, sps.ProfileIdc));
    }

    [Fact]
    public void Capture_SDP_sprop_is_the_SPS_tested_above()
    {
        var fmtp = Captures.Sdp("h264-aac").Media[0].Fmtp(96);
        var sets = H264Depacketizer.ParseSpropParameterSets(fmtp["sprop-parameter-sets"]);
        Assert.Equal("6742c01eda0280bfe5c05a83030352800000030080000019478b1750", Convert.ToHexStringLower(sets[0].Span));
    }

    [Fact]
    public void Every_truncation_of_an_SPS_throws_the_protocol_exception_never_anything_else()
    {
        var sps = Convert.FromHexString("67640028acd940780227e5c044000003000400000300c83c60c658");
        for (var n = 0; n < sps.Length - 3; n++)
        {
            try { H264Sps.Parse(sps.AsSpan(0, n)); }
            catch (MediaFormatException) { }
        }
        // And a run of zero bits where an Exp-Golomb code is expected is rejected, not looped on.
        Assert.Throws<MediaFormatException>(() => H264Sps.Parse([0x67, 0x42, 0, 0x1e, 0, 0, 0, 0, 0, 0, 0]));
    }

    [Fact]
    public void Emulation_prevention_bytes_are_removed()
    {
        Assert.Equal(new byte[] { 0, 0, 1, 0, 0, 0, 0, 0, 3 }, Rbsp.Unescape([0, 0, 3, 1, 0, 0, 3, 0, 0, 0, 3, 3]));
    }
}

public class AnnexBReaderTests
{
    private static List<byte[]> Split(System.Buffers.ReadOnlySequence<byte> data)
    {
        var reader = new System.Buffers.SequenceReader<byte>(data);
        var nals = new List<byte[]>();
        while (AnnexBReader.TryReadNalUnit(ref reader, isFinal: true, out var nal)) nals.Add(nal.ToArray());
        return nals;
    }

    [RequiresFact(Needs.Ffmpeg)]
    public void Ffmpeg_annexb_capture_splits_into_NAL_units_and_30_access_units()
    {
        var bytes = Captures.Bytes("ffmpeg-testsrc.h264");
        var nals = Split(new System.Buffers.ReadOnlySequence<byte>(bytes));
        Assert.Equal(7, nals[0][0] & 0x1f); // SPS first
        Assert.All(nals, n => Assert.NotEqual(0, n[^1])); // trailing zeros trimmed
        // Group into access units the way the exec: source does.
        var assembler = new NalUnitAssembler(MediaCodec.H264, 0);
        var output = new CollectingOutput();
        var hasVcl = false;
        var pts = 0L;
        foreach (var n in nals)
        {
            if (AccessUnitBoundary.StartsNewAccessUnit(MediaCodec.H264, n, hasVcl)) { assembler.Complete(pts, output); pts += 3600; hasVcl = false; }
            assembler.Add(n);
            hasVcl |= AccessUnitBoundary.IsVcl(MediaCodec.H264, n);
        }
        assembler.Complete(pts, output);
        Assert.Equal(30, output.Units.Count);
        Assert.Equal(new[] { 0, 25 }, output.Units.Select((u, i) => (u, i)).Where(x => x.u.IsKeyframe).Select(x => x.i));
        Assert.Equal((320, 240), (assembler.TrackInfo!.Width, assembler.TrackInfo.Height));
        var decoded = FfprobeDecode.CountFrames(FfprobeDecode.ToAnnexB(assembler.TrackInfo, output.Units), "h264");
        Assert.Equal((30, ""), (decoded.Frames, decoded.Errors));
    }

    [Fact]
    public void Every_split_of_the_stream_gives_the_same_NAL_units_and_non_final_reads_wait_for_the_next_start_code()
    {
        var bytes = Captures.Bytes("ffmpeg-testsrc.h264").AsSpan(0, 4000).ToArray();
        var expected = Split(new System.Buffers.ReadOnlySequence<byte>(bytes));
        for (var cut = 1; cut < bytes.Length; cut += 37)
            Assert.Equal(expected, Split(Segments.Split(bytes, cut)));
        // Not final: the last NAL unit is not returned because its end is unknown.
        var reader = new System.Buffers.SequenceReader<byte>(new System.Buffers.ReadOnlySequence<byte>(bytes));
        var count = 0;
        while (AnnexBReader.TryReadNalUnit(ref reader, isFinal: false, out _)) count++;
        Assert.Equal(expected.Count - 1, count);
        Assert.True(reader.Remaining > 0);
    }

    [Fact]
    public void Three_and_four_byte_start_codes_and_leading_garbage()
    {
        byte[] data = [9, 9, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3, 0];
        var nals = Split(new System.Buffers.ReadOnlySequence<byte>(data));
        Assert.Equal(new[] { new byte[] { 0x67, 1 }, [0x68, 2], [0x65, 3] }, nals);
    }
}
