using System.Buffers;
using Pinhole.Transport.Stun;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Stun;

/// <summary>RFC 4571 framing for ICE-TCP: every prefix, every split across segments, limits.</summary>
public class IceTcpFramingTests
{
    private static readonly byte[][] Packets =
    [
        StunMessageTests.SampleRequest,
        [],
        Enumerable.Range(0, 300).Select(i => (byte)i).ToArray(),
        [0x16, 0xfe, 0xfd],
    ];

    private static byte[] Stream() => Packets.SelectMany(p => IceTcpFraming.Frame(p)).ToArray();

    private static List<byte[]> ReadAll(ReadOnlySequence<byte> input, out long consumed)
    {
        var reader = new SequenceReader<byte>(input);
        var packets = new List<byte[]>();
        while (IceTcpFraming.TryReadFrame(ref reader, out var packet)) packets.Add(packet.ToArray());
        consumed = reader.Consumed;
        return packets;
    }

    [Fact]
    public void Every_two_way_split_of_a_stream_gives_the_same_packets()
    {
        var stream = Stream();
        for (var cut = 0; cut <= stream.Length; cut++)
        {
            var packets = ReadAll(Segments.Split(stream, cut), out var consumed);
            Assert.Equal(stream.Length, consumed);
            Assert.Equal(Packets, packets);
        }
    }

    [Fact]
    public void Byte_by_byte_segments_give_the_same_packets()
    {
        var stream = Stream();
        var packets = ReadAll(Segments.Split(stream, Enumerable.Range(1, stream.Length).ToArray()), out var consumed);
        Assert.Equal(stream.Length, consumed);
        Assert.Equal(Packets, packets);
    }

    [Fact]
    public void Every_prefix_yields_only_the_whole_frames_and_consumes_nothing_of_the_partial_one()
    {
        var stream = Stream();
        var ends = new List<int>();
        var offset = 0;
        foreach (var p in Packets) ends.Add(offset += 2 + p.Length);
        for (var n = 0; n <= stream.Length; n++)
        {
            var packets = ReadAll(new ReadOnlySequence<byte>(stream, 0, n), out var consumed);
            var whole = ends.Count(e => e <= n);
            Assert.Equal(whole, packets.Count);
            Assert.Equal(whole == 0 ? 0 : ends[whole - 1], consumed);
        }
    }

    [Fact]
    public void The_largest_frame_round_trips_and_larger_packets_are_refused()
    {
        var big = new byte[IceTcpFraming.MaxPacketLength];
        new Random(6544).NextBytes(big);
        var frame = IceTcpFraming.Frame(big);
        Assert.Equal(0xFF, frame[0]);
        Assert.Equal(0xFF, frame[1]);
        var packets = ReadAll(new ReadOnlySequence<byte>(frame), out _);
        Assert.Equal(big, Assert.Single(packets));
        Assert.Throws<ArgumentException>(() => IceTcpFraming.Frame(new byte[IceTcpFraming.MaxPacketLength + 1]));
        Assert.Throws<ArgumentException>(() => IceTcpFraming.WriteFrame([1, 2, 3], new byte[4]));
        Assert.Equal(5, IceTcpFraming.WriteFrame([1, 2, 3], new byte[5]));
    }

    [Fact]
    public void A_huge_length_prefix_waits_for_its_bytes_without_consuming()
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(new byte[] { 0xFF, 0xFF, 1, 2, 3 }));
        Assert.False(IceTcpFraming.TryReadFrame(ref reader, out _));
        Assert.Equal(0, reader.Consumed);
    }
}
