using Pinhole.Transport.Media;
using System.Buffers.Binary;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.Tests.Rtp;

/// <summary>
/// RTCP feedback a WebRTC receiver sends: generic NACK (RFC 4585 §6.2.1), PLI (§6.3.1), FIR
/// (RFC 5104 §4.3.1) and reception reports, from compound packets laid out as browsers send them
/// (RR, SDES, then feedback); writers round-trip; malformed input only raises the protocol exception.
/// </summary>
public class RtcpFeedbackTests
{
    private const uint Browser = 0x00000001;
    private const uint Camera = 0x4A3B2C1D;

    // RR from SSRC 1 about the camera: fraction lost 25/256, cumulative lost 3, highest 0x0001_2345,
    // jitter 90, LSR 0xAABBCCDD, DLSR 0x00010000.
    private static readonly byte[] ReceiverReport = Convert.FromHexString(
        "81c90007" + "00000001" + "4a3b2c1d" + "19000003" + "00012345" + "0000005a" + "aabbccdd" + "00010000");

    // SDES with one CNAME "abc" (skipped by the feedback parser).
    private static readonly byte[] Sdes = Convert.FromHexString("81ca0003" + "00000001" + "0103616263000000");

    // Generic NACK: PID 1000 (0x03e8), BLP 0x8005 -> 1000, 1001, 1003, 1016; then PID 65535, BLP 0x0001 -> 65535, 0.
    private static readonly byte[] Nack = Convert.FromHexString("81cd0004" + "00000001" + "4a3b2c1d" + "03e88005" + "ffff0001");

    // PLI: no FCI.
    private static readonly byte[] Pli = Convert.FromHexString("81ce0002" + "00000001" + "4a3b2c1d");

    // FIR with two entries: camera seq 7, SSRC 0x11111111 seq 8; header media SSRC 0.
    private static readonly byte[] Fir = Convert.FromHexString("84ce0006" + "00000001" + "00000000" + "4a3b2c1d07000000" + "1111111108000000");

    [Fact]
    public void A_browser_style_compound_packet_gives_every_report_and_request()
    {
        var compound = ReceiverReport.Concat(Sdes).Concat(Nack).Concat(Pli).Concat(Fir).ToArray();
        Assert.True(RtcpFeedback.IsRtcp(compound));
        var feedback = RtcpFeedback.Parse(compound);

        var rr = Assert.Single(feedback.ReceiverReports);
        Assert.Equal(Browser, rr.ReporterSsrc);
        var block = Assert.Single(rr.Reports);
        Assert.Equal(new RtcpReportBlock(Camera, 25, 3, 0x12345, 90, 0xAABBCCDD, 0x10000), block);

        var nack = Assert.Single(feedback.Nacks);
        Assert.Equal(Browser, nack.SenderSsrc);
        Assert.Equal(Camera, nack.MediaSsrc);
        Assert.Equal(new ushort[] { 1000, 1001, 1003, 1016, 65535, 0 }, nack.LostSequenceNumbers);

        Assert.Equal(new RtcpPictureLossIndication(Browser, Camera), Assert.Single(feedback.PictureLossIndications));
        Assert.Equal([new RtcpFullIntraRequest(Browser, Camera, 7), new RtcpFullIntraRequest(Browser, 0x11111111, 8)], feedback.FullIntraRequests);
        Assert.Empty(feedback.ByeSources);
    }

    [Fact]
    public void Writers_produce_the_RFC_layouts()
    {
        Assert.Equal(Pli, new RtcpPictureLossIndication(Browser, Camera).ToArray());
        Assert.Equal(Nack, new RtcpNack(Browser, Camera, [1000, 1001, 1003, 1016, 65535, 0]).ToArray());
        Assert.Equal(Fir.AsSpan(0, 20).ToArray().Select((b, i) => i == 3 ? (byte)4 : b).ToArray(), new RtcpFullIntraRequest(Browser, Camera, 7).ToArray());
    }

    [Fact]
    public void Random_NACK_lists_round_trip_through_the_writer()
    {
        var random = new Random(4585);
        for (var round = 0; round < 500; round++)
        {
            var start = random.Next(65536);
            var lost = Enumerable.Range(0, random.Next(1, 60)).Select(_ => (ushort)(start + random.Next(0, 300))).Distinct()
                .OrderBy(s => (ushort)(s - start)).ToArray();
            var parsed = Assert.Single(RtcpFeedback.Parse(new RtcpNack(5, 6, lost).ToArray()).Nacks);
            Assert.Equal(lost, parsed.LostSequenceNumbers);
        }
    }

    [Fact]
    public void Our_sender_report_writer_and_a_BYE_are_read_back()
    {
        var sr = new RtcpPacket
        {
            PacketType = RtcpPacket.SenderReportType,
            Ssrc = Camera,
            NtpTimestamp = 0xE1234567_80000000,
            RtpTimestamp = 90000,
            PacketCount = 10,
            OctetCount = 12000,
            Reports = [new RtcpReportBlock(Browser, 0, -2, 7, 1, 2, 3)],
        }.ToArray();
        var bye = new RtcpPacket { PacketType = RtcpPacket.ByeType, Sources = [Browser] }.ToArray();
        var feedback = RtcpFeedback.Parse(sr.Concat(bye).ToArray());
        var report = Assert.Single(feedback.ReceiverReports);
        Assert.Equal(Camera, report.ReporterSsrc);
        Assert.Equal(-2, Assert.Single(report.Reports).CumulativeLost);
        Assert.Equal([Browser], feedback.ByeSources);
    }

    [Fact]
    public void Padding_is_honoured_and_unknown_feedback_formats_are_skipped()
    {
        // PLI padded with 4 bytes (P bit, last byte 4), then transport-cc (RTPFB FMT 15) and REMB (PSFB FMT 15).
        var paddedPli = Convert.FromHexString("a1ce0003" + "00000001" + "4a3b2c1d" + "00000004");
        var transportCc = Convert.FromHexString("8fcd0004" + "00000001" + "4a3b2c1d" + "0001000200000000");
        var remb = Convert.FromHexString("8fce0005" + "00000001" + "00000000" + "52454d42" + "01000000" + "4a3b2c1d");
        var feedback = RtcpFeedback.Parse(paddedPli.Concat(transportCc).Concat(remb).ToArray());
        Assert.Equal(new RtcpPictureLossIndication(Browser, Camera), Assert.Single(feedback.PictureLossIndications));
        Assert.Empty(feedback.Nacks);
        Assert.Empty(feedback.FullIntraRequests);
    }

    [Theory]
    [InlineData("80c9", "4-byte header")]
    [InlineData("40c90001" + "00000001", "version")]
    [InlineData("81cd0003" + "00000001" + "4a3b2c1d", "longer than the data")]
    [InlineData("81cd0002" + "00000001" + "4a3b2c1d", "NACK FCI of 0 bytes")]
    [InlineData("84ce0003" + "00000001" + "00000000" + "4a3b2c1d", "FIR FCI of 4 bytes")]
    [InlineData("81ce0001" + "00000001", "feedback header")]
    [InlineData("a1ce0002" + "00000001" + "4a3b2c00", "padding")]
    [InlineData("a1ce0002" + "00000001" + "4a3b2cff", "padding")]
    [InlineData("82c90007" + "00000001" + "4a3b2c1d19000003000123450000005aaabbccdd00010000", "report blocks")]
    public void Malformed_packets_name_the_broken_rule(string hex, string reason)
    {
        var bytes = Convert.FromHexString(hex);
        var e = Assert.Throws<MediaFormatException>(() => RtcpFeedback.Parse(bytes));
        Assert.Contains(reason, e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(RtcpFeedback.TryParse(bytes, out _));
    }

    [Fact]
    public void Every_truncation_and_random_bytes_only_raise_the_protocol_exception()
    {
        var compound = ReceiverReport.Concat(Sdes).Concat(Nack).Concat(Pli).Concat(Fir).ToArray();
        int[] boundaries = [ReceiverReport.Length, ReceiverReport.Length + Sdes.Length, ReceiverReport.Length + Sdes.Length + Nack.Length,
            ReceiverReport.Length + Sdes.Length + Nack.Length + Pli.Length, compound.Length];
        for (var n = 0; n <= compound.Length; n++)
        {
            var ok = RtcpFeedback.TryParse(compound.AsSpan(0, n), out _);
            Assert.Equal(boundaries.Contains(n), ok);
        }

        var random = new Random(3550);
        var errors = 0;
        for (var round = 0; round < 20000; round++)
        {
            byte[] bytes;
            if (round % 2 == 0)
            {
                bytes = new byte[random.Next(0, 120)];
                random.NextBytes(bytes);
                if (bytes.Length > 1) { bytes[0] = (byte)(0x80 | (bytes[0] & 0x3F)); bytes[1] = (byte)random.Next(200, 207); }
            }
            else
            {
                bytes = (byte[])compound.Clone();
                for (var k = random.Next(1, 5); k > 0; k--) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }
            try
            {
                RtcpFeedback.Parse(bytes);
            }
            catch (MediaFormatException)
            {
                errors++;
            }
        }
        Assert.True(errors > 1000, $"only {errors} protocol errors: the fuzzer is not fuzzing");

        // The largest length field on a short packet.
        Assert.Throws<MediaFormatException>(() => RtcpFeedback.Parse(Convert.FromHexString("81cdffff00000001")));
    }

    [Fact]
    public void IsRtcp_tells_RTCP_from_RTP_by_the_packet_type_byte()
    {
        Assert.True(RtcpFeedback.IsRtcp(Pli));
        Assert.False(RtcpFeedback.IsRtcp(Convert.FromHexString("80600001"))); // RTP, PT 96
        Assert.False(RtcpFeedback.IsRtcp(Convert.FromHexString("80e00001"))); // RTP, marker + PT 96 = 0xe0 = 224
        Assert.False(RtcpFeedback.IsRtcp([0x80]));
        var rtp = new byte[12];
        rtp[0] = 0x80;
        rtp[1] = 0x80 | 111;
        BinaryPrimitives.WriteUInt16BigEndian(rtp.AsSpan(2), 1);
        Assert.False(RtcpFeedback.IsRtcp(rtp));
    }
}
