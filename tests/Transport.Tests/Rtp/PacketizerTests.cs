using System.Buffers.Binary;
using Pinhole.Transport.Aac;
using Pinhole.Transport.G711;
using Pinhole.Transport.H264;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.Tests.Rtp;

public class PacketizerTests
{
    private static readonly byte[] Sps264 = [0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x47, 0xFE, 0xC8];
    private static readonly byte[] Pps264 = [0x68, 0xCE, 0x3C, 0x80];
    private static readonly byte[] Vps265 = [0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF];
    private static readonly byte[] Sps265 = [0x42, 0x01, 0x01, 0x01, 0x60, 0x00];
    private static readonly byte[] Pps265 = [0x44, 0x01, 0xC1, 0x72];

    internal sealed record Packet(byte[] Bytes)
    {
        public bool Marker => (Bytes[1] & 0x80) != 0;
        public int PayloadType => Bytes[1] & 0x7F;
        public ushort Sequence => BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(2));
        public uint Timestamp => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(4));
        public uint Ssrc => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(8));
        public byte[] Payload => Bytes[12..];
    }

    internal static List<Packet> Run(RtpPacketizer p, params AccessUnit[] units)
    {
        var list = new List<Packet>();
        foreach (var u in units) p.Packetize(u, span => list.Add(new Packet(span.ToArray())));
        return list;
    }

    internal static byte[] Avcc(params byte[][] nals)
    {
        var ms = new MemoryStream();
        foreach (var n in nals)
        {
            var len = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(len, n.Length);
            ms.Write(len);
            ms.Write(n);
        }
        return ms.ToArray();
    }

    private static byte[] Nal(byte header, int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        b[0] = header;
        return b;
    }

    private static byte[] Nal265(int type, int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        b[0] = (byte)(type << 1);
        b[1] = 0x01; // LayerId 0, TID 1
        return b;
    }

    // Test-side reassembly of RFC 6184 packets into NAL units, written from the RFC, independent of the packetizer.
    internal static List<byte[]> Depacketize264(IEnumerable<Packet> packets)
    {
        var nals = new List<byte[]>();
        MemoryStream? fu = null;
        foreach (var pk in packets)
        {
            var p = pk.Payload;
            var type = p[0] & 0x1F;
            if (type is >= 1 and <= 23) nals.Add(p);
            else if (type == 24)
            {
                for (var i = 1; i < p.Length;)
                {
                    var n = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(i));
                    nals.Add(p[(i + 2)..(i + 2 + n)]);
                    i += 2 + n;
                }
            }
            else if (type == 28)
            {
                if ((p[1] & 0x80) != 0)
                {
                    Assert.Null(fu);
                    fu = new MemoryStream();
                    fu.WriteByte((byte)((p[0] & 0xE0) | (p[1] & 0x1F)));
                }
                Assert.NotNull(fu);
                fu.Write(p.AsSpan(2));
                if ((p[1] & 0x40) != 0) { nals.Add(fu.ToArray()); fu = null; }
            }
            else Assert.Fail($"unexpected packet type {type}");
        }
        Assert.Null(fu);
        return nals;
    }

    internal static List<byte[]> Depacketize265(IEnumerable<Packet> packets)
    {
        var nals = new List<byte[]>();
        MemoryStream? fu = null;
        foreach (var pk in packets)
        {
            var p = pk.Payload;
            var type = (p[0] >> 1) & 0x3F;
            if (type < 48) nals.Add(p);
            else if (type == 48)
            {
                for (var i = 2; i < p.Length;)
                {
                    var n = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(i));
                    nals.Add(p[(i + 2)..(i + 2 + n)]);
                    i += 2 + n;
                }
            }
            else if (type == 49)
            {
                if ((p[2] & 0x80) != 0)
                {
                    Assert.Null(fu);
                    fu = new MemoryStream();
                    fu.WriteByte((byte)((p[0] & 0x81) | ((p[2] & 0x3F) << 1)));
                    fu.WriteByte(p[1]);
                }
                Assert.NotNull(fu);
                fu.Write(p.AsSpan(3));
                if ((p[2] & 0x40) != 0) { nals.Add(fu.ToArray()); fu = null; }
            }
            else Assert.Fail($"unexpected packet type {type}");
        }
        Assert.Null(fu);
        return nals;
    }

    private static TrackInfo H264Track => new() { Codec = MediaCodec.H264, ClockRate = 90_000, ParameterSets = [Sps264, Pps264] };
    private static TrackInfo H265Track => new() { Codec = MediaCodec.H265, ClockRate = 90_000, ParameterSets = [Vps265, Sps265, Pps265] };

    [Theory]
    [InlineData(200)]
    [InlineData(1400)]
    [InlineData(20)]
    public void H264_packets_fit_the_mtu_and_reassemble_to_the_same_nal_units(int mtu)
    {
        var p = new H264Packetizer(H264Track, 96, new RtpPacketizerOptions { MaxPacketSize = mtu });
        var idr = Nal(0x65, 5000, 1);
        var sei = Nal(0x06, 30, 2);
        var slice = Nal(0x41, 1389, 3); // exactly one 1400-byte single NAL packet
        var packets = Run(p,
            new AccessUnit(0, 1000, 1000, true, Avcc(sei, idr)),
            new AccessUnit(0, 4600, 4600, false, Avcc(slice)));

        Assert.All(packets, pk => Assert.InRange(pk.Bytes.Length, 13, mtu));
        Assert.All(packets, pk => Assert.Equal(96, pk.PayloadType));
        var nals = Depacketize264(packets);
        // The keyframe lacked SPS/PPS, so they come first.
        Assert.Equal([Sps264, Pps264, sei, idr, slice], nals);
        // Marker only on the last packet of each access unit.
        var markers = packets.Select((pk, i) => (pk, i)).Where(x => x.pk.Marker).Select(x => x.i).ToArray();
        var firstAuLast = packets.FindLastIndex(pk => pk.Timestamp == p.ToRtpTimestamp(1000));
        Assert.Equal([firstAuLast, packets.Count - 1], markers);
        // Sequence numbers are consecutive (mod 2^16), timestamps are PTS + offset.
        for (var i = 1; i < packets.Count; i++) Assert.Equal((ushort)(packets[i - 1].Sequence + 1), packets[i].Sequence);
        Assert.Equal(unchecked(1000u + p.TimestampOffset), packets[0].Timestamp);
        Assert.Equal(unchecked(4600u + p.TimestampOffset), packets[^1].Timestamp);
    }

    [Fact]
    public void H264_parameter_sets_go_as_one_stap_a_and_are_not_repeated_when_in_band()
    {
        var p = new H264Packetizer(H264Track, 96, new RtpPacketizerOptions { InitialSequenceNumber = 65535, TimestampOffset = uint.MaxValue - 10, Ssrc = 42 });
        var idr = Nal(0x65, 100, 1);
        var packets = Run(p, new AccessUnit(0, 100, 100, true, Avcc(idr)));
        Assert.Equal(2, packets.Count);
        Assert.Equal(24, packets[0].Payload[0] & 0x1F);
        Assert.Equal(0x60, packets[0].Payload[0] & 0x60); // NRI of SPS/PPS (3)
        Assert.Equal([65535, 0], packets.Select(x => (int)x.Sequence));
        Assert.Equal(89u, packets[0].Timestamp); // wraps modulo 2^32
        Assert.All(packets, pk => Assert.Equal(42u, pk.Ssrc));

        var inBand = Run(p, new AccessUnit(0, 200, 200, true, Avcc(Sps264, Pps264, idr)));
        Assert.Equal([Sps264, Pps264, idr], Depacketize264(inBand));
        Assert.Equal(3, inBand.Count);
        // Non-keyframes never get parameter sets.
        Assert.Single(Run(p, new AccessUnit(0, 300, 300, false, Avcc(Nal(0x41, 50, 5)))));
    }

    [Fact]
    public void H264_new_parameter_sets_of_the_same_codec_are_taken_without_restarting_the_sequence()
    {
        var p = new H264Packetizer(H264Track, 96, new RtpPacketizerOptions { InitialSequenceNumber = 7 });
        Run(p, new AccessUnit(0, 0, 0, true, Avcc(Nal(0x65, 10, 1))));
        byte[] sps2 = [0x67, 0x64, 0x00, 0x28, 0xAC];
        Assert.True(p.TryUpdateTrack(H264Track with { ParameterSets = [sps2, Pps264] }));
        Assert.False(p.TryUpdateTrack(H265Track));
        var packets = Run(p, new AccessUnit(0, 3000, 3000, true, Avcc(Nal(0x65, 10, 1))));
        Assert.Equal(9, packets[0].Sequence);
        Assert.Equal(sps2, Depacketize264(packets)[0]);
    }

    [Fact]
    public void H264_malformed_length_prefix_sends_only_the_whole_nal_units_before_it()
    {
        var p = new H264Packetizer(H264Track);
        var good = Nal(0x41, 40, 1);
        var data = Avcc(good).Concat(new byte[] { 0x7F, 0xFF, 0xFF, 0xFF, 0x41, 0x00 }).ToArray();
        var packets = Run(p, new AccessUnit(0, 0, 0, false, data));
        Assert.Equal([good], Depacketize264(packets));
        Assert.True(packets[^1].Marker);
        Assert.Empty(Run(p, new AccessUnit(0, 0, 0, false, new byte[] { 0, 0, 0 })));
        Assert.Empty(Run(p, new AccessUnit(0, 0, 0, false, new byte[] { 0, 0, 0, 0 })));
    }

    [Theory]
    [InlineData(300)]
    [InlineData(1400)]
    public void H265_packets_fit_the_mtu_and_reassemble_to_the_same_nal_units(int mtu)
    {
        var p = new H265Packetizer(H265Track, 96, new RtpPacketizerOptions { MaxPacketSize = mtu });
        var idr = Nal265(19, 7000, 1);
        var trail = Nal265(1, 900, 2);
        var packets = Run(p,
            new AccessUnit(0, 0, 0, true, Avcc(idr)),
            new AccessUnit(0, 3600, 3600, false, Avcc(trail)));
        Assert.All(packets, pk => Assert.InRange(pk.Bytes.Length, 13, mtu));
        Assert.Equal([Vps265, Sps265, Pps265, idr, trail], Depacketize265(packets));
        Assert.Equal(48, (packets[0].Payload[0] >> 1) & 0x3F); // AP
        Assert.Equal(1, packets[0].Payload[1] & 0x07); // TID of the aggregated units
        Assert.Equal(2, packets.Count(pk => pk.Marker));
        Assert.True(packets[^1].Marker);
        Assert.True(packets.Single(pk => pk.Marker && pk.Timestamp == p.ToRtpTimestamp(0)) == packets.Last(pk => pk.Timestamp == p.ToRtpTimestamp(0)));
    }

    [Theory]
    [InlineData(1400)]
    [InlineData(100)]
    public void Aac_uses_one_au_header_per_packet_and_fragments_large_frames(int mtu)
    {
        var track = new TrackInfo { Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 2, AudioSpecificConfig = new byte[] { 0x11, 0x90 } };
        var p = new AacPacketizer(track, 97, new RtpPacketizerOptions { MaxPacketSize = mtu });
        var frames = Enumerable.Range(0, 3).Select(i => Nal(0x21, 300 + i, i)).ToArray();
        var packets = Run(p, frames.Select((f, i) => new AccessUnit(0, i * 1024, i * 1024, true, f)).ToArray());
        Assert.All(packets, pk => Assert.InRange(pk.Bytes.Length, 17, mtu));
        var rebuilt = new List<byte[]>();
        var current = new MemoryStream();
        foreach (var pk in packets)
        {
            var pl = pk.Payload;
            Assert.Equal(16, BinaryPrimitives.ReadUInt16BigEndian(pl));
            var auSize = BinaryPrimitives.ReadUInt16BigEndian(pl.AsSpan(2)) >> 3;
            Assert.Equal(0, pl[3] & 0x07);
            current.Write(pl.AsSpan(4));
            if (pk.Marker)
            {
                Assert.Equal(auSize, (int)current.Length);
                rebuilt.Add(current.ToArray());
                current = new MemoryStream();
            }
        }
        Assert.Equal(frames, rebuilt);
        Assert.Equal([0u, 1024u, 2048u], packets.Where(x => x.Marker).Select(x => x.Timestamp - p.TimestampOffset));
        Assert.Equal(mtu >= 400 ? 3 : 12, packets.Count);
    }

    [Theory]
    [InlineData(MediaCodec.PcmAlaw, 8)]
    [InlineData(MediaCodec.PcmMulaw, 0)]
    public void G711_splits_into_20ms_packets_with_advancing_timestamps(MediaCodec codec, int pt)
    {
        var track = new TrackInfo { Codec = codec, ClockRate = 8000, SampleRate = 8000, Channels = 1 };
        var p = (G711Packetizer)RtpPacketizerFactory.Create(track, G711Packetizer.StaticPayloadType(codec), new RtpPacketizerOptions { TimestampOffset = 0 });
        var samples = Nal(0xD5, 400, 1);
        var packets = Run(p, new AccessUnit(0, 8000, 8000, true, samples), new AccessUnit(0, 8400, 8400, true, samples));
        Assert.Equal([160, 160, 80, 160, 160, 80], packets.Select(x => x.Payload.Length));
        Assert.Equal([8000u, 8160u, 8320u, 8400u, 8560u, 8720u], packets.Select(x => x.Timestamp));
        Assert.All(packets, x => Assert.Equal(pt, x.PayloadType));
        Assert.Equal([true, false, false, false, false, false], packets.Select(x => x.Marker));
        Assert.Equal(samples.Concat(samples), packets.SelectMany(x => x.Payload));
    }

    [Fact]
    public void Random_starting_points_differ_between_sessions()
    {
        var a = new H264Packetizer(H264Track);
        var b = new H264Packetizer(H264Track);
        var c = new H264Packetizer(H264Track);
        // Three 32-bit random values colliding pairwise is a 3/2^32 event.
        Assert.False(a.Ssrc == b.Ssrc && b.Ssrc == c.Ssrc);
        Assert.False(a.TimestampOffset == b.TimestampOffset && b.TimestampOffset == c.TimestampOffset);
    }
}
