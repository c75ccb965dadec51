using Pinhole.Testing;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.H265;

public class H265DepacketizerTests
{
    [RequiresFact(Needs.Ffmpeg)]
    public void GStreamer_capture_gives_keyframe_first_90kHz_units_that_ffprobe_decodes()
    {
        var (dep, output) = Captures.Depacketize("h265", 0);
        var units = output.Units;
        Assert.True(units.Count >= 30, $"{units.Count} units");
        var track = dep.TrackInfo!;
        Assert.Equal((MediaCodec.H265, 640, 360, 3), (track.Codec, track.Width, track.Height, track.ParameterSets.Count));
        Assert.Equal(new[] { 32, 33, 34 }, track.ParameterSets.Select(p => (p.Span[0] >> 1) & 0x3f));
        Assert.True(units[0].IsKeyframe);
        for (var i = 1; i < units.Count; i++) Assert.Equal(3600, units[i].Pts - units[i - 1].Pts);
        Assert.Equal(units.Count(u => u.IsKeyframe), units.Where((u, i) => i % 25 == 0).Count());
        var decoded = FfprobeDecode.CountFrames(FfprobeDecode.ToAnnexB(track, units), "hevc");
        Assert.Equal("", decoded.Errors);
        Assert.Equal((units.Count, "hevc", 640, 360), (decoded.Frames, decoded.Codec, decoded.Width, decoded.Height));
    }

    private static RtpPacket Packet(ushort seq, uint ts, bool marker, byte[] payload) =>
        new() { SequenceNumber = seq, Timestamp = ts, Marker = marker, PayloadType = 96, Payload = payload };

    [Fact]
    public void Aggregation_packet_and_fragmentation_units_rebuild_NAL_headers()
    {
        var sdp = Captures.Sdp("h265");
        var ps = H265Depacketizer.ParseSpropParameterSets(sdp.Media[0].Fmtp(96));
        Assert.Equal(3, ps.Count);
        var dep = new H265Depacketizer(0);
        var output = new CollectingOutput();
        // AP (type 48) with VPS, SPS, PPS.
        var ap = new List<byte> { 48 << 1, 1 };
        foreach (var p in ps) { ap.Add((byte)(p.Length >> 8)); ap.Add((byte)p.Length); ap.AddRange(p.ToArray()); }
        dep.Push(Packet(1, 90, false, ap.ToArray()), output);
        // IDR_W_RADL (19) fragmented in three FUs (type 49).
        var idr = new byte[3000];
        idr[0] = 19 << 1; idr[1] = 1; idr[2] = 0x80;
        for (var i = 3; i < idr.Length; i++) idr[i] = (byte)i;
        var body = idr.AsSpan(2).ToArray();
        ushort seq = 2;
        for (var o = 0; o < body.Length; o += 1000)
        {
            var len = Math.Min(1000, body.Length - o);
            var fu = new byte[3 + len];
            fu[0] = 49 << 1; fu[1] = 1;
            fu[2] = (byte)((o == 0 ? 0x80 : 0) | (o + len == body.Length ? 0x40 : 0) | 19);
            body.AsSpan(o, len).CopyTo(fu.AsSpan(3));
            dep.Push(Packet(seq++, 90, o + len == body.Length, fu), output);
        }
        // The first marker of a stream is not trusted yet to end a whole picture: the next packet proves it.
        Assert.Empty(output.Units);
        dep.Push(Packet(seq++, 3690, true, [1 << 1, 1, 0x80, 5]), output);
        var unit = output.Units[0];
        Assert.True(unit.IsKeyframe);
        Assert.Equal(4 * 4 + ps.Sum(p => p.Length) + idr.Length, unit.Data.Length);
        Assert.True(unit.Data.Span[^idr.Length..].SequenceEqual(idr));
        Assert.Equal((640, 360), (dep.TrackInfo!.Width, dep.TrackInfo.Height));
    }

    public static TheoryData<string, byte[]> Bad => new()
    {
        { "too short", [2, 1] },
        { "AP size past the end", [96, 1, 0, 50, 2, 1] },
        { "AP size below a NAL header", [96, 1, 0, 1, 2] },
        { "FU continuation without start", [98, 1, 0x13, 1, 2] },
        { "FU start and end", [98, 1, 0xd3, 1, 2] },
        { "PACI", [100, 1, 0, 0] },
        { "reserved type 60", [120, 1, 0, 0] },
    };

    [Theory]
    [MemberData(nameof(Bad))]
    public void Malformed_payloads_throw_the_protocol_exception(string what, byte[] payload)
    {
        var dep = new H265Depacketizer(0);
        dep.Push(Packet(1, 0, true, [2, 1, 0x80, 5]), new CollectingOutput()); // in sync on a packet boundary
        var e = Assert.Throws<MediaFormatException>(() => dep.Push(Packet(2, 0, false, payload), new CollectingOutput()));
        Assert.False(string.IsNullOrEmpty(e.Message), what);
    }

    [Fact]
    public void Sps_of_a_1080p_ffmpeg_stream_gives_1920x1080()
    {
        var sps = H265Sps.Parse(Convert.FromHexString("420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000c84"));
        Assert.Equal((1920, 1080, 1), (sps.Width, sps.Height, sps.GeneralProfileIdc));
    }
}
