using System.Buffers.Binary;
using Pinhole.Transport.H264;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;
using Pinhole.Testing;

namespace Pinhole.Transport.Tests.H264;

public class H264DepacketizerTests
{
    [RequiresFact(Needs.Ffmpeg)]
    public void GStreamer_capture_gives_25fps_units_keyframe_every_25_and_ffprobe_decodes_all_of_them()
    {
        var (dep, output) = Captures.Depacketize("h264-aac", 0);
        var units = output.Units;
        Assert.InRange(units.Count, 40, 60); // 2 s at 25 fps
        var track = dep.TrackInfo!;
        Assert.Equal((MediaCodec.H264, 90000, 640, 360), (track.Codec, track.ClockRate, track.Width, track.Height));
        Assert.True(units[0].IsKeyframe);
        for (var i = 1; i < units.Count; i++)
        {
            Assert.Equal(3600, units[i].Pts - units[i - 1].Pts);
            Assert.Equal(units[i].Pts, units[i].Dts);
            // GOP of 25: a keyframe exactly every 25 frames after the first.
            Assert.Equal(units[i].IsKeyframe, (i % 25) == 0);
        }
        var decoded = FfprobeDecode.CountFrames(FfprobeDecode.ToAnnexB(track, units), "h264");
        Assert.Equal("", decoded.Errors);
        Assert.Equal((units.Count, "h264", 640, 360), (decoded.Frames, decoded.Codec, decoded.Width, decoded.Height));
    }

    [Fact]
    public void Sprop_parameter_sets_from_the_real_SDP_give_the_track_before_any_packet()
    {
        var sdp = Captures.Sdp("h264-aac");
        Assert.True(RtpDepacketizerFactory.TryCreate(sdp.Media[0], 0, out var dep));
        Assert.NotNull(dep!.TrackInfo);
        Assert.Equal(2, dep.TrackInfo!.ParameterSets.Count);
        Assert.Equal(7, dep.TrackInfo.ParameterSets[0].Span[0] & 0x1f);
        Assert.Equal(8, dep.TrackInfo.ParameterSets[1].Span[0] & 0x1f);
    }

    // Synthetic NAL units: a real SPS/PPS pair (from the capture's SDP) and fake slices.
    private static readonly byte[] Sps = Convert.FromBase64String("Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAZR4sXUA==");
    private static readonly byte[] Pps = Convert.FromBase64String("aM48gA==");

    private static byte[] Nal(byte header, int length, byte fill = 0xAB)
    {
        var n = new byte[length];
        n[0] = header;
        n.AsSpan(1).Fill(fill);
        return n;
    }

    private static RtpPacket Packet(ushort seq, uint ts, bool marker, byte[] payload) =>
        new() { SequenceNumber = seq, Timestamp = ts, Marker = marker, PayloadType = 96, Payload = payload };

    private static byte[] StapA(params byte[][] nals)
    {
        var list = new List<byte> { 24 };
        foreach (var n in nals) { list.Add((byte)(n.Length >> 8)); list.Add((byte)n.Length); list.AddRange(n); }
        return list.ToArray();
    }

    private static IEnumerable<byte[]> FuA(byte[] nal, int chunk)
    {
        var body = nal.AsSpan(1).ToArray();
        for (var o = 0; o < body.Length; o += chunk)
        {
            var len = Math.Min(chunk, body.Length - o);
            var fu = new byte[2 + len];
            fu[0] = (byte)((nal[0] & 0xe0) | 28);
            fu[1] = (byte)((o == 0 ? 0x80 : 0) | (o + len == body.Length ? 0x40 : 0) | (nal[0] & 0x1f));
            body.AsSpan(o, len).CopyTo(fu.AsSpan(2));
            yield return fu;
        }
    }

    private static List<byte[]> NalsOf(AccessUnit u)
    {
        var list = new List<byte[]>();
        var d = u.Data.Span;
        while (d.Length > 0) { var n = BinaryPrimitives.ReadInt32BigEndian(d); list.Add(d.Slice(4, n).ToArray()); d = d[(4 + n)..]; }
        return list;
    }

    [Fact]
    public void STAP_A_with_parameter_sets_and_FU_A_IDR_rebuild_the_exact_NAL_units()
    {
        var idr = Nal(0x65, 5000);
        var dep = new H264Depacketizer(0);
        var output = new CollectingOutput();
        ushort seq = 100;
        dep.Push(Packet(seq++, 9000, false, StapA(Sps, Pps)), output);
        var fragments = FuA(idr, 1400).ToList();
        Assert.Equal(4, fragments.Count);
        for (var i = 0; i < fragments.Count; i++) dep.Push(Packet(seq++, 9000, i == fragments.Count - 1, fragments[i]), output);
        // The first marker of a stream is not trusted yet to end a whole picture: the next packet proves it.
        Assert.Empty(output.Units);
        dep.Push(Packet(seq++, 12600, true, Nal(0x41, 10)), output);
        var unit = output.Units[0];
        Assert.True(unit.IsKeyframe);
        Assert.Equal(9000, unit.Pts);
        var nals = NalsOf(unit);
        Assert.Equal(3, nals.Count);
        Assert.Equal(Sps, nals[0]);
        Assert.Equal(Pps, nals[1]);
        Assert.Equal(idr, nals[2]);
        Assert.Equal((640, 360), (dep.TrackInfo!.Width, dep.TrackInfo.Height));
    }

    [Fact]
    public void Stream_without_parameter_sets_waits_for_SPS_PPS_and_a_keyframe()
    {
        var dep = new H264Depacketizer(0);
        var output = new CollectingOutput();
        ushort seq = 0;
        uint ts = 0;
        dep.Push(Packet(seq++, ts += 3600, true, Nal(0x41, 50)), output); // P slice, nothing known
        dep.Push(Packet(seq++, ts += 3600, true, Nal(0x65, 50)), output); // IDR, but no SPS/PPS
        dep.Push(Packet(seq++, ts += 3600, false, Sps), output);
        dep.Push(Packet(seq++, ts, true, Pps), output);                   // parameter sets only: no unit
        Assert.Empty(output.Units);
        Assert.NotNull(dep.TrackInfo);
        dep.Push(Packet(seq++, ts += 3600, true, Nal(0x41, 50)), output); // P without a keyframe first: dropped
        dep.Push(Packet(seq++, ts += 3600, true, Nal(0x65, 50)), output); // first decodable unit
        dep.Push(Packet(seq++, ts += 3600, true, Nal(0x41, 50)), output);
        Assert.Equal(new[] { true, false }, output.Units.Select(u => u.IsKeyframe));
        Assert.Equal(3600, output.Units[1].Pts - output.Units[0].Pts);
    }

    [Fact]
    public void In_band_SPS_change_produces_a_new_TrackInfo_and_a_new_OnTracks()
    {
        var sink = new RecordingSink();
        var mux = new MediaSinkMultiplexer(sink, 1);
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        ushort seq = 0;
        dep.Push(Packet(seq++, 0, true, Nal(0x65, 20)), mux);
        dep.Push(Packet(seq++, 3600, true, Nal(0x41, 20)), mux);
        // A 1280x720 SPS (x264 baseline) arrives in-band with the next IDR.
        var sps720 = Convert.FromHexString("6742c01fd9005005bb011000000300100000030320f1832480");
        dep.Push(Packet(seq++, 7200, false, StapA(sps720, Pps)), mux);
        dep.Push(Packet(seq++, 7200, true, Nal(0x65, 20)), mux);
        Assert.Equal(2, sink.TrackAnnouncements.Count);
        Assert.Equal((640, 360), (sink.TrackAnnouncements[0][0].Width, sink.TrackAnnouncements[0][0].Height));
        Assert.Equal((1280, 720), (sink.TrackAnnouncements[1][0].Width, sink.TrackAnnouncements[1][0].Height));
        Assert.NotSame(sink.TrackAnnouncements[0], sink.TrackAnnouncements[1]);
        Assert.Equal(3, sink.Units.Count);
    }

    [Fact]
    public void Stream_joined_in_the_middle_of_a_FU_A_drops_the_tail_silently()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var output = new CollectingOutput();
        var fu = FuA(Nal(0x41, 3000), 1000).ToList();
        dep.Push(Packet(7, 0, false, fu[1]), output); // no exception: joining mid-NAL is normal
        dep.Push(Packet(8, 0, true, fu[2]), output);
        dep.Push(Packet(9, 3600, true, Nal(0x65, 10)), output);
        dep.Push(Packet(10, 7200, false, Nal(0x09, 2)), output); // the next access unit proves the first marker
        Assert.Equal(new long[] { 3600 }, output.Units.Select(u => u.Pts));
        // Once in sync, a continuation without a start is malformed again.
        Assert.Throws<MediaFormatException>(() => dep.Push(Packet(11, 7200, false, fu[1]), output));
    }

    [Fact]
    public void Timestamp_change_ends_an_access_unit_whose_marker_was_lost()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var output = new CollectingOutput();
        dep.Push(Packet(1, 1000, false, Nal(0x65, 10)), output);
        Assert.Empty(output.Units);
        dep.Push(Packet(2, 4600, true, Nal(0x41, 10)), output);
        dep.Push(Packet(3, 8200, true, Nal(0x41, 10)), output); // proves the marker of 4600 (the first of the stream)
        Assert.Equal(new long[] { 1000, 4600 }, output.Units.Select(u => u.Pts));
    }

    [Fact]
    public void Lost_packet_drops_the_unit_and_waits_for_the_next_keyframe()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var output = new CollectingOutput();
        dep.Push(Packet(1, 0, true, Nal(0x65, 10)), output);
        var fu = FuA(Nal(0x41, 3000), 1000).ToList();
        dep.Push(Packet(2, 3600, false, fu[0]), output);
        dep.Push(Packet(4, 3600, true, fu[2]), output); // seq 3 lost
        dep.Push(Packet(5, 7200, true, Nal(0x41, 10)), output); // P after loss: broken reference
        dep.Push(Packet(6, 10800, true, Nal(0x65, 10)), output);
        Assert.Equal(new long[] { 0, 10800 }, output.Units.Select(u => u.Pts));
        Assert.True(dep.DroppedUnits >= 1);
    }

    [Fact]
    public void Sequence_and_timestamp_wrap_are_continuous()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var output = new CollectingOutput();
        dep.Push(Packet(65535, uint.MaxValue - 1000, true, Nal(0x65, 10)), output);
        dep.Push(Packet(0, 2600, true, Nal(0x41, 10)), output); // +3601 ticks across the 32-bit wrap
        dep.Push(Packet(1, 6200, false, Nal(0x09, 2)), output); // the first markers of a stream wait for the next packet
        Assert.Equal(2, output.Units.Count);
        Assert.Equal(3601, output.Units[1].Pts - output.Units[0].Pts);
    }

    public static TheoryData<string, byte[][]> BadSequences => new()
    {
        { "continuation without a start", [[0x7c, 0x05, 1, 2]] },
        { "start before the previous FU-A ended", [[0x7c, 0x85, 1], [0x7c, 0x85, 2]] },
        { "both start and end", [[0x7c, 0xc5, 1]] },
        { "STAP-A size past the end", [[24, 0x00, 0x10, 0x65, 1]] },
        { "STAP-A zero size", [[24, 0x00, 0x00]] },
        { "STAP-A truncated size", [[24, 0x00, 0x02, 0x65, 1, 0x00]] },
        { "FU-A too short", [[0x7c, 0x85]] },
        { "reserved type 30", [[0x1e, 1, 2]] },
        { "MTAP16 (interleaved mode)", [[26, 1, 2, 3]] },
        { "empty payload", [[]] },
        { "single NAL inside FU-A", [[0x7c, 0x85, 1], [0x41, 1]] },
        { "forbidden bit set", [[0xe5, 1, 2]] },
    };

    [Theory]
    [MemberData(nameof(BadSequences))]
    public void Malformed_payloads_throw_the_protocol_exception_and_the_depacketizer_recovers(string what, byte[][] payloads)
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var output = new CollectingOutput();
        ushort seq = 10;
        dep.Push(Packet(seq++, 0, true, Nal(0x41, 5)), output); // in sync on a packet boundary (dropped: no keyframe yet)
        var e = Assert.Throws<MediaFormatException>(() =>
        {
            foreach (var p in payloads) dep.Push(Packet(seq++, 0, false, p), output);
        });
        Assert.False(string.IsNullOrEmpty(e.Message), what);
        // Afterwards a clean keyframe still comes through (once the next packet proves its marker).
        dep.Push(Packet(seq++, 3600, true, Nal(0x65, 10)), output);
        dep.Push(Packet(seq++, 7200, false, Nal(0x09, 2)), output);
        Assert.True(Assert.Single(output.Units).IsKeyframe);
    }

    [Fact]
    public void Endless_FU_A_is_cut_off_at_the_size_limit()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var output = new CollectingOutput();
        var chunk = new byte[1402];
        chunk[0] = 0x7c;
        chunk[1] = 0x85;
        dep.Push(Packet(0, 0, false, (byte[])chunk.Clone()), output);
        chunk[1] = 0x05;
        ushort seq = 1;
        var e = Assert.Throws<MediaFormatException>(() =>
        {
            for (var i = 0; i < 10_000; i++) dep.Push(Packet(seq++, 0, false, chunk), output);
        });
        Assert.Contains("larger than", e.Message, StringComparison.Ordinal);
        Assert.True(seq < 7000, "limit reached after about 8 MiB");
    }
}
