using Pinhole.Transport.Aac;
using Pinhole.Transport.G711;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Aac;

public class AacDepacketizerTests
{
    [Fact]
    public void GStreamer_capture_gives_AAC_frames_1024_samples_apart_with_the_SDP_config()
    {
        var (dep, output) = Captures.Depacketize("h264-aac", 1);
        var track = dep.TrackInfo!;
        Assert.Equal((MediaCodec.Aac, 48000, 48000, 1), (track.Codec, track.ClockRate, track.SampleRate, track.Channels));
        var asc = AudioSpecificConfig.Parse(track.AudioSpecificConfig.Span);
        Assert.Equal((2, 48000, 1, 1024), (asc.AudioObjectType, asc.SampleRate, asc.Channels, asc.FrameLength));
        var units = output.Units;
        Assert.InRange(units.Count, 70, 100); // ~2 s at 46.9 frames/s
        for (var i = 1; i < units.Count; i++) Assert.Equal(1024, units[i].Pts - units[i - 1].Pts);
        Assert.All(units, u => Assert.True(u.IsKeyframe && u.Data.Length is > 0 and < 2000));
    }

    private static Dictionary<string, string> Fmtp() => new(StringComparer.OrdinalIgnoreCase)
    {
        ["streamtype"] = "5", ["mode"] = "AAC-hbr", ["config"] = "1188", ["sizelength"] = "13", ["indexlength"] = "3", ["indexdeltalength"] = "3",
    };

    // AU-headers-length, then 16-bit AU headers (13-bit size, 3-bit index), then the data.
    private static byte[] Payload(params byte[][] aus)
    {
        var p = new List<byte> { 0, (byte)(16 * aus.Length) };
        foreach (var au in aus) { var h = au.Length << 3; p.Add((byte)(h >> 8)); p.Add((byte)h); }
        foreach (var au in aus) p.AddRange(au);
        return p.ToArray();
    }

    private static RtpPacket Packet(ushort seq, uint ts, bool marker, byte[] payload) =>
        new() { SequenceNumber = seq, Timestamp = ts, Marker = marker, PayloadType = 97, Payload = payload };

    [Fact]
    public void Zero_size_AU_header_is_dropped_not_delivered_as_an_empty_access_unit()
    {
        // Fuzzing (fuzz/Pinhole.Fuzz, target aac) found an AU-header with AU-size 0 delivered as an
        // empty access unit. The AUs around it still come out, with their index-based timestamps.
        var dep = new AacDepacketizer(1, 48000, Fmtp());
        var output = new CollectingOutput();
        dep.Push(Packet(1, 5000, true, Payload([1, 1], [], [3])), output);
        Assert.Equal(new[] { 2, 1 }, output.Units.Select(u => u.Data.Length));
        Assert.Equal(new long[] { 5000, 7048 }, output.Units.Select(u => u.Pts));
        Assert.Equal(1, dep.DroppedUnits);
    }

    [Fact]
    public void Several_AUs_in_one_packet_get_consecutive_frame_timestamps()
    {
        var dep = new AacDepacketizer(1, 48000, Fmtp());
        var output = new CollectingOutput();
        dep.Push(Packet(1, 5000, true, Payload([1, 1, 1], [2, 2], [3])), output);
        Assert.Equal(new long[] { 5000, 6024, 7048 }, output.Units.Select(u => u.Pts));
        Assert.Equal(new[] { 3, 2, 1 }, output.Units.Select(u => u.Data.Length));
        Assert.All(output.Units, u => Assert.Equal(1, u.Track));
    }

    [Fact]
    public void Fragmented_AU_is_reassembled_across_packets()
    {
        var dep = new AacDepacketizer(0, 48000, Fmtp());
        var output = new CollectingOutput();
        var au = Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray();
        byte[] Frag(int offset, int length) => [0, 16, (byte)((au.Length << 3) >> 8), (byte)(au.Length << 3), .. au.AsSpan(offset, length)];
        dep.Push(Packet(1, 100, false, Frag(0, 1200)), output);
        dep.Push(Packet(2, 100, false, Frag(1200, 1200)), output);
        Assert.Empty(output.Units);
        dep.Push(Packet(3, 100, true, Frag(2400, 600)), output);
        Assert.Equal(au, Assert.Single(output.Units).Data.ToArray());
    }

    [Theory]
    [InlineData(new byte[] { 0 })]
    [InlineData(new byte[] { 0, 0x20, 0, 8 })]          // headers longer than the packet
    [InlineData(new byte[] { 0, 0 })]                   // no AU header
    [InlineData(new byte[] { 0, 16, 0xff, 0xf8, 1 })]   // AU size 8191 bigger than the packet, ended by marker
    public void Malformed_payloads_throw_the_protocol_exception(byte[] payload)
    {
        var dep = new AacDepacketizer(0, 48000, Fmtp());
        Assert.Throws<MediaFormatException>(() => dep.Push(Packet(1, 0, true, payload), new CollectingOutput()));
    }

    [Fact]
    public void Missing_or_bad_config_is_a_protocol_error()
    {
        var f = Fmtp();
        f["config"] = "zz";
        Assert.Throws<MediaFormatException>(() => new AacDepacketizer(0, 48000, f));
        f.Remove("config");
        Assert.Throws<MediaFormatException>(() => new AacDepacketizer(0, 48000, f));
    }
}

public class G711DepacketizerTests
{
    [Theory]
    [InlineData("pcma", MediaCodec.PcmAlaw)]
    [InlineData("pcmu", MediaCodec.PcmMulaw)]
    public void GStreamer_capture_gives_8kHz_units_whose_length_matches_the_timestamp_step(string name, MediaCodec codec)
    {
        var (dep, output) = Captures.Depacketize(name, 0);
        Assert.Equal((codec, 8000, 1), (dep.TrackInfo!.Codec, dep.TrackInfo.ClockRate, dep.TrackInfo.Channels));
        var units = output.Units;
        Assert.True(units.Count >= 10, $"{units.Count} units"); // GStreamer sends 1024 samples (128 ms) per packet
        // One byte per sample: each unit's length is the timestamp distance to the next.
        for (var i = 1; i < units.Count; i++) Assert.Equal(units[i - 1].Data.Length, units[i].Pts - units[i - 1].Pts);
        Assert.InRange(units.Sum(u => u.Data.Length), 8000, 20000); // about 2 s of audio
    }
}
