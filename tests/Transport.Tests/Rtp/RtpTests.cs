using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtp;

public class RtpPacketTests
{
    [Fact]
    public void Packet_with_CSRCs_extension_and_padding_round_trips()
    {
        var packet = new RtpPacket
        {
            Marker = true, PayloadType = 96, SequenceNumber = 65535, Timestamp = 0xdeadbeef, Ssrc = 0x01020304,
            Csrcs = [7, 8], HasExtension = true, ExtensionProfile = 0xbede, ExtensionData = new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 },
            PaddingLength = 3, Payload = new byte[] { 9, 9, 9, 9, 9 },
        };
        var bytes = packet.ToArray();
        Assert.Equal(12 + 8 + 4 + 8 + 5 + 3, bytes.Length);
        Assert.Equal(0xb2, bytes[0]); // V=2 P X CC=2
        Assert.Equal(3, bytes[^1]);
        var parsed = RtpPacket.Parse(bytes);
        Assert.Equal((true, 96, 65535, 0xdeadbeefu, 0x01020304u), (parsed.Marker, (int)parsed.PayloadType, (int)parsed.SequenceNumber, parsed.Timestamp, parsed.Ssrc));
        Assert.Equal(new uint[] { 7, 8 }, parsed.Csrcs);
        Assert.Equal((0xbede, 8), (parsed.ExtensionProfile, parsed.ExtensionData.Length));
        Assert.Equal(new byte[] { 9, 9, 9, 9, 9 }, parsed.Payload.ToArray());
        Assert.Equal(bytes, parsed.ToArray());
    }

    [Fact]
    public void Every_real_RTP_packet_of_the_captures_round_trips_byte_for_byte()
    {
        var count = 0;
        foreach (var name in new[] { "h264-aac", "h265", "pcma" })
            foreach (var f in Captures.Stream(name).Frames.Where(f => f.Channel % 2 == 0))
            {
                Assert.Equal(f.Payload.ToArray(), RtpPacket.Parse(f.Payload).ToArray());
                count++;
            }
        Assert.True(count > 200);
    }

    [Theory]
    [InlineData(new byte[] { 0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0 })]                       // 11 bytes
    [InlineData(new byte[] { 0x40, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1 })]                    // version 1
    [InlineData(new byte[] { 0x81, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1 })]                    // CSRC missing
    [InlineData(new byte[] { 0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 9 })]  // extension past the end
    [InlineData(new byte[] { 0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 20 })]          // padding longer than payload
    [InlineData(new byte[] { 0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 0 })]           // padding length 0
    public void Malformed_packets_throw_the_protocol_exception(byte[] bytes) =>
        Assert.Throws<MediaFormatException>(() => RtpPacket.Parse(bytes));

    [Fact]
    public void Random_bytes_never_throw_anything_but_the_protocol_exception()
    {
        var random = new Random(1234);
        for (var i = 0; i < 20000; i++)
        {
            var b = new byte[random.Next(0, 64)];
            random.NextBytes(b);
            if (b.Length > 0 && random.Next(2) == 0) b[0] = (byte)(0x80 | (b[0] & 0x3f));
            try { RtpPacket.Parse(b); }
            catch (MediaFormatException) { }
        }
    }
}

public class RtcpTests
{
    [Fact]
    public void Real_sender_reports_from_GStreamer_parse()
    {
        var rtcp = Captures.Stream("h264-aac").Frames.Where(f => f.Channel % 2 == 1).ToList();
        Assert.NotEmpty(rtcp);
        var packets = rtcp.SelectMany(f => RtcpPacket.ParseCompound(f.Payload.Span)).ToList();
        var sr = packets.First(p => p.PacketType == RtcpPacket.SenderReportType);
        Assert.True(sr.NtpTimestamp > 0 && sr.PacketCount > 0);
        Assert.Contains(packets, p => p.PacketType == 202); // SDES rides along in the compound packet
    }

    [Fact]
    public void Receiver_and_sender_reports_round_trip()
    {
        var rr = new RtcpPacket
        {
            PacketType = RtcpPacket.ReceiverReportType, Ssrc = 42,
            Reports = [new RtcpReportBlock(7, 12, -3, 70000, 55, 0x11223344, 65536)],
        };
        var parsed = Assert.Single(RtcpPacket.ParseCompound(rr.ToArray()));
        Assert.Equal((42u, rr.Reports[0]), (parsed.Ssrc, parsed.Reports[0]));
        var sr = new RtcpPacket { PacketType = RtcpPacket.SenderReportType, Ssrc = 1, NtpTimestamp = 0x0102030405060708, RtpTimestamp = 9, PacketCount = 10, OctetCount = 11 };
        var back = Assert.Single(RtcpPacket.ParseCompound(sr.ToArray()));
        Assert.Equal((sr.NtpTimestamp, 9u, 10u, 11u), (back.NtpTimestamp, back.RtpTimestamp, back.PacketCount, back.OctetCount));
    }

    [Theory]
    [InlineData(new byte[] { 0x80, 200, 0 })]
    [InlineData(new byte[] { 0x80, 201, 0, 5, 0, 0, 0, 1 })]        // length past the end
    [InlineData(new byte[] { 0x81, 201, 0, 1, 0, 0, 0, 1 })]        // one report block announced, none there
    [InlineData(new byte[] { 0x00, 201, 0, 1, 0, 0, 0, 1 })]        // version 0
    public void Malformed_RTCP_throws_the_protocol_exception(byte[] bytes) =>
        Assert.Throws<MediaFormatException>(() => RtcpPacket.ParseCompound(bytes));
}

public class RtpReorderBufferTests
{
    private static RtpPacket P(int seq) => new() { SequenceNumber = (ushort)seq, Payload = Array.Empty<byte>() };

    private static List<int> Feed(RtpReorderBuffer buffer, params int[] seqs)
    {
        var ready = new List<RtpPacket>();
        foreach (var s in seqs) buffer.Push(P(s), ready);
        return ready.Select(p => (int)p.SequenceNumber).ToList();
    }

    [Fact]
    public void Reordered_packets_come_out_in_order_across_the_16_bit_wrap()
    {
        var b = new RtpReorderBuffer(8);
        Assert.Equal(new[] { 65533, 65534, 65535, 0, 1, 2 }, Feed(b, 65533, 65535, 65534, 1, 0, 2));
    }

    [Fact]
    public void Duplicates_and_late_packets_are_dropped()
    {
        var b = new RtpReorderBuffer(8);
        Assert.Equal(new[] { 10, 11, 12 }, Feed(b, 10, 11, 11, 12, 10));
        Assert.Equal(2, b.Dropped);
    }

    [Fact]
    public void A_missing_packet_is_skipped_once_the_window_is_full()
    {
        var b = new RtpReorderBuffer(4);
        Assert.Equal(new[] { 0 }, Feed(b, 0, 2, 3, 4));     // 1 missing: 2,3,4 wait
        Assert.Equal(new[] { 2, 3, 4, 5 }, Feed(b, 5));     // 5 would overflow the window: give up on 1
        Assert.Equal(1, b.Lost);
        var rest = new List<RtpPacket>();
        b.Flush(rest);
        Assert.Empty(rest);
    }

    [Fact]
    public void Sender_restart_with_a_far_away_sequence_resynchronizes()
    {
        var b = new RtpReorderBuffer(8);
        Feed(b, 1000, 1001);
        Assert.Equal(new[] { 30000, 30001 }, Feed(b, 30000, 30001));
    }

    [Fact]
    public void Window_must_be_a_power_of_two() => Assert.Throws<ArgumentException>(() => new RtpReorderBuffer(10));
}

public class RtpTimestampUnwrapperTests
{
    [Fact]
    public void Unwraps_across_2_pow_32_forward_and_tolerates_small_steps_back()
    {
        var u = new RtpTimestampUnwrapper();
        Assert.Equal(4294967000L, u.Unwrap(4294967000));
        Assert.Equal(4294967296L + 200, u.Unwrap(200));
        Assert.Equal(4294967296L + 100, u.Unwrap(100));       // reordered
        Assert.Equal(4294967296L + 300, u.Unwrap(300));
    }

    [Fact]
    public void Long_run_of_steps_accumulates_exactly()
    {
        var u = new RtpTimestampUnwrapper();
        uint ts = 4_000_000_000;
        long expected = ts, last = u.Unwrap(ts);
        for (var i = 0; i < 5000; i++)
        {
            ts += 3600_00; // big steps wrap many times
            expected += 3600_00;
            last = u.Unwrap(ts);
        }
        Assert.Equal(expected, last);
    }
}

public class RtpReceptionStatisticsTests
{
    private sealed class FrozenTime : TimeProvider
    {
        public long Now;
        public override long GetTimestamp() => Now;
        public override long TimestampFrequency => 1000;
    }

    [Fact]
    public void Loss_wrap_and_LSR_DLSR_are_reported()
    {
        var time = new FrozenTime();
        var s = new RtpReceptionStatistics();
        Assert.Null(s.CreateReport(time));
        foreach (var seq in new[] { 65530, 65531, 65533, 65534, 0, 1, 3 }) // 65532, 65535 and 2 lost, one wrap
            s.OnRtp(new RtpPacket { Ssrc = 77, SequenceNumber = (ushort)seq, Payload = Array.Empty<byte>() });
        s.OnSenderReport(new RtcpPacket { PacketType = RtcpPacket.SenderReportType, Ssrc = 77, NtpTimestamp = 0x1122334455667788 }, time.Now);
        time.Now += 2000; // 2 s later
        var r = s.CreateReport(time)!.Value;
        Assert.Equal((77u, 65536u + 3, 3, 0x33445566u), (r.Ssrc, r.HighestSequence, r.CumulativeLost, r.LastSr));
        Assert.Equal(2 * 65536u, r.DelaySinceLastSr);
        Assert.Equal((byte)(3 * 256 / 10), r.FractionLost);
        Assert.Equal(0, s.CreateReport(time)!.Value.FractionLost); // nothing new lost since the last report
    }
}
