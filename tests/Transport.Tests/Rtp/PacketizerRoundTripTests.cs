using System.Buffers.Binary;
using Pinhole.Testing;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtp;

/// <summary>
/// Access units depacketized from real camera captures go through our packetizers and back through
/// the depacketizers: what comes out is what went in, and ffprobe decodes it.
/// </summary>
public class PacketizerRoundTripTests
{
    private static List<byte[]> Nals(ReadOnlySpan<byte> avcc)
    {
        var list = new List<byte[]>();
        while (avcc.Length >= 4)
        {
            var n = BinaryPrimitives.ReadInt32BigEndian(avcc);
            list.Add(avcc.Slice(4, n).ToArray());
            avcc = avcc[(4 + n)..];
        }
        return list;
    }

    private static bool IsParameterSet(MediaCodec codec, byte[] nal) =>
        codec == MediaCodec.H264 ? (nal[0] & 0x1F) is 7 or 8 : ((nal[0] >> 1) & 0x3F) is 32 or 33 or 34;

    private static byte[] Avcc(IEnumerable<byte[]> nals)
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

    private static (TrackInfo? Track, List<AccessUnit> Units, int Packets) RoundTrip(TrackInfo info, IEnumerable<AccessUnit> units, int mtu)
    {
        var sdp = SdpWriter.Build([info]);
        var packetizer = RtpPacketizerFactory.Create(info, (byte)sdp.Media[0].PayloadType, new RtpPacketizerOptions { MaxPacketSize = mtu });
        Assert.True(Pinhole.Transport.Rtsp.RtpDepacketizerFactory.TryCreate(sdp.Media[0], 0, out var depacketizer));
        var output = new CollectingOutput();
        var packets = 0;
        foreach (var u in units)
        {
            packetizer.Packetize(u, p =>
            {
                Assert.InRange(p.Length, RtpPacketizer.HeaderSize + 1, mtu);
                packets++;
                depacketizer!.Push(RtpPacket.Parse(p.ToArray()), output);
            });
        }
        Assert.Equal(0, depacketizer!.DroppedUnits);
        return (depacketizer.TrackInfo, output.Units, packets);
    }

    [RequiresTheory(Needs.Ffmpeg)]
    [InlineData("h264-aac", "h264", 1400)]
    [InlineData("h264-aac", "h264", 200)]
    [InlineData("h265", "hevc", 1400)]
    [InlineData("h265", "hevc", 200)]
    public void Video_round_trips_and_keyframes_carry_parameter_sets_in_band(string capture, string format, int mtu)
    {
        var (dep, captured) = Captures.Depacketize(capture, 0);
        var info = dep.TrackInfo!;
        // Strip in-band parameter sets, as a camera that sends them only in the SDP would: the
        // packetizer must then send the track's own before every keyframe.
        var units = captured.Units.Select(u => u with { Data = Avcc(Nals(u.Data.Span).Where(n => !IsParameterSet(info.Codec, n))) }).ToList();

        var (track, output, packets) = RoundTrip(info, units, mtu);
        Assert.Equal(units.Count, output.Count);
        Assert.Equal((info.Width, info.Height), (track!.Width, track.Height));
        for (var i = 0; i < units.Count; i++)
        {
            Assert.Equal(units[i].IsKeyframe, output[i].IsKeyframe);
            Assert.Equal(units[i].Pts - units[0].Pts, output[i].Pts - output[0].Pts);
            var outNals = Nals(output[i].Data.Span);
            Assert.Equal(Nals(units[i].Data.Span), outNals.Where(n => !IsParameterSet(info.Codec, n)));
            if (units[i].IsKeyframe)
                Assert.Equal(info.ParameterSets.Select(p => p.ToArray()), outNals.Where(n => IsParameterSet(info.Codec, n)));
        }
        // Decodable with only what came in band (no parameter sets from the track).
        var decoded = FfprobeDecode.CountFrames(FfprobeDecode.ToAnnexB(track with { ParameterSets = [] }, output), format);
        Assert.Equal("", decoded.Errors);
        Assert.Equal((units.Count, info.Width, info.Height), (decoded.Frames, decoded.Width, decoded.Height));
        if (mtu == 200) Assert.True(packets > units.Count * 3, "small MTU must fragment");
    }

    [Theory]
    [InlineData(1400)]
    [InlineData(100)]
    public void Aac_round_trips_byte_exact(int mtu)
    {
        var (dep, captured) = Captures.Depacketize("h264-aac", 1);
        var info = dep.TrackInfo!;
        var (track, output, _) = RoundTrip(info, captured.Units, mtu);
        Assert.Equal(info.AudioSpecificConfig.ToArray(), track!.AudioSpecificConfig.ToArray());
        Assert.Equal(captured.Units.Count, output.Count);
        for (var i = 0; i < output.Count; i++)
        {
            Assert.Equal(captured.Units[i].Data.ToArray(), output[i].Data.ToArray());
            Assert.Equal(captured.Units[i].Pts - captured.Units[0].Pts, output[i].Pts - output[0].Pts);
        }
    }

    [Theory]
    [InlineData("pcma", MediaCodec.PcmAlaw)]
    [InlineData("pcmu", MediaCodec.PcmMulaw)]
    public void G711_round_trips_sample_exact(string capture, MediaCodec codec)
    {
        var (dep, captured) = Captures.Depacketize(capture, 0);
        var info = dep.TrackInfo!;
        Assert.Equal(codec, info.Codec);
        // Join the captured packets into 100 ms access units, which the packetizer splits into 20 ms packets.
        var all = captured.Units.SelectMany(u => u.Data.ToArray()).ToArray();
        var units = Enumerable.Range(0, all.Length / 800).Select(i => new AccessUnit(0, captured.Units[0].Pts + i * 800, captured.Units[0].Pts + i * 800, true, all.AsMemory(i * 800, 800))).ToList();
        var (track, output, packets) = RoundTrip(info, units, 1400);
        Assert.Equal(codec, track!.Codec);
        Assert.Equal(units.Count * 5, packets);
        Assert.Equal(all.AsSpan(0, units.Count * 800).ToArray(), output.SelectMany(u => u.Data.ToArray()).ToArray());
        for (var i = 1; i < output.Count; i++) Assert.Equal(160, output[i].Pts - output[i - 1].Pts);
    }
}
