using System.Buffers.Binary;
using System.Buffers;
using Pinhole.Testing;
using Pinhole.Transport.H264;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtp;

/// <summary>
/// Issue #21: pictures made of several slices. live555ProxyServer (and encoders in slice or
/// low-latency mode) set the RTP marker after every slice; an access unit must still be the whole
/// picture. A scripted peer sends the bytes such a source sends.
/// </summary>
public class SlicedPictureTests
{
    // A real SPS/PPS pair (GStreamer x264 constrained baseline 640x360, the capture's SDP).
    private static readonly byte[] Sps = Convert.FromBase64String("Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAZR4sXUA==");
    private static readonly byte[] Pps = Convert.FromBase64String("aM48gA==");

    /// <summary>An H.264 slice whose header starts with first_mb_in_slice = <paramref name="firstMb"/> (ue(v), §7.3.3).</summary>
    private static byte[] Slice(byte header, int firstMb, int length, byte fill = 0x5A)
    {
        var n = new byte[length];
        n[0] = header;
        n.AsSpan(1).Fill(fill);
        // ue(v): (leading zeros) 1 (info bits) for codeNum + 1, §9.1; then slice_type ue(v) = 0 ("1").
        var code = (uint)firstMb + 1;
        var bits = 32 - System.Numerics.BitOperations.LeadingZeroCount(code);
        var writer = new List<bool>();
        for (var i = 0; i < bits - 1; i++) writer.Add(false);
        for (var i = bits - 1; i >= 0; i--) writer.Add(((code >> i) & 1) != 0);
        writer.Add(true);
        for (var i = 0; i < writer.Count; i++)
        {
            var at = 1 + i / 8;
            var mask = (byte)(0x80 >> (i % 8));
            n[at] = writer[i] ? (byte)(n[at] | mask) : (byte)(n[at] & ~mask);
        }
        return n;
    }

    /// <summary>An H.265 slice segment (TRAIL_R 1 or IDR_W_RADL 19) with first_slice_segment_in_pic_flag as given.</summary>
    private static byte[] Slice265(int type, bool first, int length)
    {
        var n = new byte[length];
        n[0] = (byte)(type << 1);
        n[1] = 1;
        n.AsSpan(2).Fill(0x3C);
        n[2] = (byte)(first ? 0xC0 : 0x40);
        return n;
    }

    private static RtpPacket Packet(ushort seq, long ts, bool marker, byte[] payload) =>
        new() { SequenceNumber = seq, Timestamp = (uint)ts, Marker = marker, PayloadType = 96, Payload = payload };

    private static byte[] StapA(params byte[][] nals)
    {
        var list = new List<byte> { 24 };
        foreach (var n in nals) { list.Add((byte)(n.Length >> 8)); list.Add((byte)n.Length); list.AddRange(n); }
        return [.. list];
    }

    private static List<byte[]> FuA(byte[] nal, int chunk)
    {
        var list = new List<byte[]>();
        var body = nal.AsSpan(1).ToArray();
        for (var o = 0; o < body.Length; o += chunk)
        {
            var len = Math.Min(chunk, body.Length - o);
            var fu = new byte[2 + len];
            fu[0] = (byte)((nal[0] & 0xe0) | 28);
            fu[1] = (byte)((o == 0 ? 0x80 : 0) | (o + len == body.Length ? 0x40 : 0) | (nal[0] & 0x1f));
            body.AsSpan(o, len).CopyTo(fu.AsSpan(2));
            list.Add(fu);
        }
        return list;
    }

    private static List<byte[]> Fu265(byte[] nal, int chunk)
    {
        var list = new List<byte[]>();
        var type = (nal[0] >> 1) & 0x3f;
        var body = nal.AsSpan(2).ToArray();
        for (var o = 0; o < body.Length; o += chunk)
        {
            var len = Math.Min(chunk, body.Length - o);
            var fu = new byte[3 + len];
            fu[0] = 49 << 1;
            fu[1] = nal[1];
            fu[2] = (byte)((o == 0 ? 0x80 : 0) | (o + len == body.Length ? 0x40 : 0) | type);
            body.AsSpan(o, len).CopyTo(fu.AsSpan(3));
            list.Add(fu);
        }
        return list;
    }

    private static List<byte[]> NalsOf(AccessUnit u)
    {
        var list = new List<byte[]>();
        var d = u.Data.Span;
        while (d.Length > 0) { var n = BinaryPrimitives.ReadInt32BigEndian(d); list.Add(d.Slice(4, n).ToArray()); d = d[(4 + n)..]; }
        return list;
    }

    /// <summary>A scripted source: sends packets with consecutive sequence numbers and records when units come out.</summary>
    private sealed class Peer(RtpDepacketizer depacketizer)
    {
        private ushort _seq = 1000;
        public CollectingOutput Output { get; } = new();
        public List<AccessUnit> Units => Output.Units;

        public void Send(long ts, bool marker, byte[] payload) => depacketizer.Push(Packet(_seq++, ts, marker, payload), Output);

        public void Skip() => _seq++;

        /// <summary>Sends each slice as one packet (FU-A / FU when longer than <paramref name="mtu"/>), the marker after every slice, as live555's proxy does.</summary>
        public void SendSlices(long ts, int mtu, bool h265, params byte[][] slices)
        {
            foreach (var s in slices)
            {
                if (s.Length <= mtu) { Send(ts, true, s); continue; }
                var fragments = h265 ? Fu265(s, mtu) : FuA(s, mtu);
                for (var i = 0; i < fragments.Count; i++) Send(ts, i == fragments.Count - 1, fragments[i]);
            }
        }
    }

    [Theory]
    [InlineData(2000)] // single NAL unit packets
    [InlineData(500)]  // every slice in FU-A fragments
    public void H264_marker_after_every_slice_gives_one_unit_per_picture(int mtu)
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        var pictures = new List<byte[][]>
        {
            new[] { Slice(0x65, 0, 1200), Slice(0x65, 450, 1100) },
            new[] { Slice(0x41, 0, 900), Slice(0x41, 450, 800) },
            new[] { Slice(0x41, 0, 700), Slice(0x41, 450, 1300) },
            new[] { Slice(0x41, 0, 600), Slice(0x41, 450, 600) },
        };
        for (var i = 0; i < pictures.Count; i++)
        {
            peer.SendSlices(3600L * i, mtu, false, pictures[i][0]);
            // Half a picture never leaves: the marker after the first slice ends nothing.
            Assert.Equal(i, peer.Units.Count);
            peer.SendSlices(3600L * i, mtu, false, pictures[i][1]);
        }
        peer.Send(3600L * pictures.Count, true, Slice(0x41, 0, 50)); // the next picture proves the last one ended
        Assert.Equal(pictures.Count, peer.Units.Count);
        for (var i = 0; i < pictures.Count; i++)
        {
            Assert.Equal(3600L * i, peer.Units[i].Pts);
            Assert.Equal(i == 0, peer.Units[i].IsKeyframe);
            Assert.Equal(pictures[i], NalsOf(peer.Units[i]));
        }
        Assert.False(dep.MarkerEndsPictures);
        Assert.Equal(0, dep.DroppedUnits);
    }

    [Fact]
    public void H264_next_picture_in_FU_A_releases_the_previous_one_at_its_start_fragment()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        peer.SendSlices(0, 2000, false, Slice(0x65, 0, 500), Slice(0x65, 450, 500));
        var next = FuA(Slice(0x41, 0, 3000), 1000);
        peer.Send(0, false, next[0]); // same timestamp (a field, or a camera that repeats it): the slice header says "new picture"
        Assert.Single(peer.Units);
        Assert.Equal(2, NalsOf(peer.Units[0]).Count);
    }

    [Theory]
    [InlineData(2000)]
    [InlineData(400)]
    public void H265_marker_after_every_slice_segment_gives_one_unit_per_picture(int mtu)
    {
        var vps = Convert.FromBase64String("QAEMAf//AWAAAAMAkAAAAwAAAwA/ugJA");
        var sps = Convert.FromBase64String("QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHy5bpKTC//AAEAAWoMDAwIAAADAAgAAAMAyEA=");
        var pps = Convert.FromBase64String("RAHAcYMS");
        var dep = new H265Depacketizer(0, [vps, sps, pps]);
        var peer = new Peer(dep);
        var pictures = new[]
        {
            new[] { Slice265(19, true, 1000), Slice265(19, false, 900) },
            new[] { Slice265(1, true, 700), Slice265(1, false, 500) },
            new[] { Slice265(1, true, 300), Slice265(1, false, 800) },
        };
        for (var i = 0; i < pictures.Length; i++)
        {
            peer.SendSlices(3600L * i, mtu, true, pictures[i][0]);
            Assert.Equal(i, peer.Units.Count);
            peer.SendSlices(3600L * i, mtu, true, pictures[i][1]);
        }
        peer.Send(3600L * pictures.Length, true, Slice265(1, true, 20));
        Assert.Equal(pictures.Length, peer.Units.Count);
        for (var i = 0; i < pictures.Length; i++) Assert.Equal(pictures[i], NalsOf(peer.Units[i]));
        Assert.True(peer.Units[0].IsKeyframe);
        Assert.False(dep.MarkerEndsPictures);
    }

    [Fact]
    public void SPS_PPS_repeated_before_every_slice_of_an_IDR_stay_in_one_picture_once()
    {
        // GStreamer rtph264pay config-interval=-1 behind a proxy that marks slices:
        // STAP-A(SPS, PPS), IDR slice 0 (M), STAP-A(SPS, PPS), IDR slice 1 (M).
        var dep = new H264Depacketizer(0);
        var peer = new Peer(dep);
        var s0 = Slice(0x65, 0, 600);
        var s1 = Slice(0x65, 450, 600);
        peer.Send(0, false, StapA(Sps, Pps));
        peer.Send(0, true, s0);
        peer.Send(0, false, StapA(Sps, Pps));
        peer.Send(0, true, s1);
        Assert.Empty(peer.Units);
        peer.Send(3600, true, Slice(0x41, 0, 100));
        var unit = Assert.Single(peer.Units);
        Assert.True(unit.IsKeyframe);
        Assert.Equal(new[] { Sps, Pps, s0, s1 }, NalsOf(unit));
    }

    public static TheoryData<string, byte[], bool> AfterASlice => new()
    {
        { "access unit delimiter", [0x09, 0xF0], true },
        { "SEI", [0x06, 0x05, 0x01, 0x80], true },
        { "a different PPS", [0x68, 0xCE, 0x3C, 0x80, 0x11], true },
        { "the PPS already in the unit", Pps, false },
        { "a slice with first_mb_in_slice = 0", Slice(0x41, 0, 20), true },
        { "a slice with first_mb_in_slice = 120", Slice(0x41, 120, 20), false },
    };

    [Theory]
    [MemberData(nameof(AfterASlice))]
    public void Within_one_timestamp_only_what_begins_an_access_unit_ends_the_picture(string what, byte[] nal, bool newUnit)
    {
        var dep = new H264Depacketizer(0);
        var peer = new Peer(dep);
        peer.Send(0, false, StapA(Sps, Pps));
        peer.Send(0, false, Slice(0x65, 0, 100));
        peer.Send(0, false, nal);
        Assert.True(newUnit == (peer.Units.Count == 1), what);
    }

    [Fact]
    public void A_stream_that_marks_whole_pictures_is_trusted_after_a_keyframe_and_then_units_leave_at_the_marker()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        // Learning: each unit waits for the next packet.
        peer.Send(0, true, Slice(0x65, 0, 800));
        Assert.Empty(peer.Units);
        peer.Send(3600, true, Slice(0x41, 0, 200)); // proves the keyframe's marker
        Assert.Single(peer.Units);
        Assert.False(dep.MarkerEndsPictures);
        peer.Send(7200, true, Slice(0x41, 0, 200)); // proves the second marker
        Assert.True(dep.MarkerEndsPictures);
        // Trusted: the unit is out the moment its marker arrives (no added latency).
        Assert.Equal(3, peer.Units.Count);
        for (var i = 3; i < 30; i++)
        {
            peer.Send(3600L * i, true, Slice(i % 10 == 0 ? (byte)0x65 : (byte)0x41, 0, 200));
            Assert.Equal(i + 1, peer.Units.Count);
            Assert.Equal(3600L * i, peer.Units[^1].Pts);
        }
        Assert.Equal(0, dep.DroppedUnits);
    }

    [Fact]
    public void Markers_proven_only_on_P_frames_are_not_trusted_until_a_keyframe_is()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        for (var i = 0; i < 10; i++) peer.Send(3600L * i, true, Slice(0x41, 0, 100)); // joined mid-GOP
        Assert.False(dep.MarkerEndsPictures);
        peer.Send(36000, true, Slice(0x65, 0, 100));
        peer.Send(39600, true, Slice(0x41, 0, 100));
        Assert.True(dep.MarkerEndsPictures);
    }

    [Fact]
    public void A_stream_that_marks_slices_from_its_first_picture_is_never_trusted()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        peer.SendSlices(0, 2000, false, Slice(0x65, 0, 500), Slice(0x65, 450, 500));
        // Then many one-slice pictures, each proving its marker: the contradiction still counts.
        for (var i = 1; i < 20; i++)
        {
            peer.Send(3600L * i, true, Slice(0x41, 0, 100));
            Assert.Equal(i, peer.Units.Count); // always held until the next packet
        }
        Assert.False(dep.MarkerEndsPictures);
        Assert.Equal(2, NalsOf(peer.Units[0]).Count);
    }

    [Fact]
    public void A_trusted_stream_that_then_marks_a_slice_loses_the_trust_and_drops_to_the_next_keyframe()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        long ts = 0;
        peer.Send(ts, true, Slice(0x65, 0, 300));
        for (var i = 0; i < 3; i++) peer.Send(ts += 3600, true, Slice(0x41, 0, 100));
        Assert.True(dep.MarkerEndsPictures);
        var before = peer.Units.Count;
        // A two-slice picture with a marker after each slice: its top half leaves at the first marker
        // (trusted), the second slice shows the stream marks slices.
        peer.SendSlices(ts += 3600, 2000, false, Slice(0x41, 0, 300), Slice(0x41, 450, 300));
        Assert.False(dep.MarkerEndsPictures);
        Assert.Equal(before + 1, peer.Units.Count);
        var dropped = dep.DroppedUnits;
        // The picture went out without its bottom half, so what refers to it is dropped until a keyframe.
        peer.SendSlices(ts += 3600, 2000, false, Slice(0x41, 0, 300), Slice(0x41, 450, 300));
        peer.SendSlices(ts += 3600, 2000, false, Slice(0x65, 0, 300), Slice(0x65, 450, 300));
        peer.SendSlices(ts += 3600, 2000, false, Slice(0x41, 0, 300), Slice(0x41, 450, 300));
        Assert.Equal(before + 2, peer.Units.Count);
        var keyframe = peer.Units[^1];
        Assert.True(keyframe.IsKeyframe);
        Assert.Equal(ts - 3600, keyframe.Pts);
        Assert.Equal(2, NalsOf(keyframe).Count(n => (n[0] & 0x1f) == 5));
        Assert.True(dep.DroppedUnits > dropped);
    }

    [Fact]
    public void Loss_in_the_middle_of_a_two_slice_picture_drops_it_and_waits_for_the_next_keyframe()
    {
        var dep = new H264Depacketizer(0, [Sps, Pps]);
        var peer = new Peer(dep);
        peer.SendSlices(0, 2000, false, Slice(0x65, 0, 500), Slice(0x65, 450, 500));
        // Picture 2: slice 0 whole, slice 1 in three FU-As of which the middle one is lost.
        peer.Send(3600, true, Slice(0x41, 0, 400));
        var fu = FuA(Slice(0x41, 450, 2500), 1000);
        peer.Send(3600, false, fu[0]);
        peer.Skip();
        peer.Send(3600, true, fu[2]);
        peer.SendSlices(7200, 2000, false, Slice(0x41, 0, 400), Slice(0x41, 450, 400)); // refers to the broken one
        peer.SendSlices(10800, 2000, false, Slice(0x65, 0, 500), Slice(0x65, 450, 500));
        peer.Send(14400, true, Slice(0x41, 0, 100));
        Assert.Equal(new long[] { 0, 10800 }, peer.Units.Select(u => u.Pts));
        Assert.All(peer.Units, u => Assert.Equal(2, NalsOf(u).Count));
        Assert.Equal(2, dep.DroppedUnits);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public void Real_x264_two_slice_stream_sent_with_a_marker_per_slice_comes_out_one_decodable_unit_per_picture()
    {
        // Captures/ffmpeg-testsrc-2slices.h264: 12 pictures of 2 slices each (see Captures/README.md).
        var bytes = Captures.Bytes("ffmpeg-testsrc-2slices.h264");
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        var pictures = new List<List<byte[]>>();
        var hasVcl = false;
        while (AnnexBReader.TryReadNalUnit(ref reader, isFinal: true, out var nalSequence))
        {
            var nal = nalSequence.ToArray();
            if (pictures.Count == 0 || AccessUnitBoundary.StartsNewAccessUnit(MediaCodec.H264, nal, hasVcl)) { pictures.Add([]); hasVcl = false; }
            pictures[^1].Add(nal);
            hasVcl |= AccessUnitBoundary.IsVcl(MediaCodec.H264, nal);
        }
        Assert.Equal(12, pictures.Count);
        Assert.All(pictures, p => Assert.Equal(2, p.Count(n => AccessUnitBoundary.IsVcl(MediaCodec.H264, n))));

        var dep = new H264Depacketizer(0);
        var peer = new Peer(dep);
        for (var i = 0; i < pictures.Count; i++)
        {
            foreach (var nal in pictures[i])
            {
                // Marker after every slice (live555ProxyServer); FU-A for NAL units over 1000 bytes.
                var slice = AccessUnitBoundary.IsVcl(MediaCodec.H264, nal);
                if (nal.Length <= 1000) { peer.Send(3600L * i, slice, nal); continue; }
                var fragments = FuA(nal, 1000);
                for (var f = 0; f < fragments.Count; f++) peer.Send(3600L * i, slice && f == fragments.Count - 1, fragments[f]);
            }
        }
        peer.Send(3600L * pictures.Count, true, [0x09, 0xF0]); // an AUD after the last picture
        Assert.Equal(pictures.Count, peer.Units.Count);
        for (var i = 0; i < pictures.Count; i++)
        {
            Assert.Equal(3600L * i, peer.Units[i].Pts);
            Assert.Equal(3600L * i, peer.Units[i].Dts); // no B-frames: DTS = PTS
            Assert.Equal(pictures[i].Where(n => (n[0] & 0x1f) != 9), NalsOf(peer.Units[i]));
        }
        var decoded = FfprobeDecode.CountFrames(FfprobeDecode.ToAnnexB(dep.TrackInfo!, peer.Units), "h264");
        Assert.Equal("", decoded.Errors);
        Assert.Equal((12, 320, 240), (decoded.Frames, decoded.Width, decoded.Height));
    }
}
