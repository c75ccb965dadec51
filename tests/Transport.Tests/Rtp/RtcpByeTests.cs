using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.Tests.Rtp;

/// <summary>RTCP BYE (RFC 3550 §6.6), from bytes real cameras sent.</summary>
public class RtcpByeTests
{
    [Fact]
    public void GStreamer_compound_SR_SDES_BYE_at_end_of_stream_parses_to_a_BYE_naming_the_stream()
    {
        // GStreamer 1.22 after EOS sends SR, SDES and BYE in one compound packet; the BYE is as captured
        // (tests/Pinhole.Testing/peers/rtsp-camera.py stopped gracefully), SR and SDES are built here.
        var sr = new RtcpPacket { PacketType = RtcpPacket.SenderReportType, Ssrc = 0xb9ce3dfd, NtpTimestamp = 0xeebab7b12ff1fe63 }.ToArray();
        var sdes = Convert.FromHexString("81ca0003b9ce3dfd010474657374000000"[..32]);
        var bye = Convert.FromHexString("81cb0001b9ce3dfd");
        var packets = RtcpPacket.ParseCompound([.. sr, .. sdes, .. bye]);

        Assert.Equal([RtcpPacket.SenderReportType, (byte)202, RtcpPacket.ByeType], packets.Select(p => p.PacketType));
        var b = packets[2];
        Assert.Equal(0xb9ce3dfdu, b.Ssrc);
        Assert.Equal([0xb9ce3dfdu], b.Sources);
        Assert.Null(b.Reason);
    }

    [Fact]
    public void Vlc_BYE_names_SSRC_0()
    {
        var b = Assert.Single(RtcpPacket.ParseCompound(Convert.FromHexString("81cb000100000000")));
        Assert.Equal((RtcpPacket.ByeType, 0u), (b.PacketType, b.Ssrc));
    }

    [Fact]
    public void BYE_with_several_sources_and_a_reason_round_trips_padded_to_32_bits()
    {
        var bytes = new RtcpPacket { PacketType = RtcpPacket.ByeType, Sources = [1, 2, 3], Reason = "camera rebooting" }.ToArray();
        Assert.Equal(0, bytes.Length % 4);
        Assert.Equal(0x83, bytes[0]); // V=2, SC=3
        var b = Assert.Single(RtcpPacket.ParseCompound(bytes));
        Assert.Equal([1u, 2u, 3u], b.Sources);
        Assert.Equal("camera rebooting", b.Reason);
        Assert.Equal(1u, b.Ssrc);
    }

    [Fact]
    public void BYE_without_sources_is_valid_and_names_none()
    {
        var b = Assert.Single(RtcpPacket.ParseCompound(Convert.FromHexString("80cb0000")));
        Assert.Equal(RtcpPacket.ByeType, b.PacketType);
        Assert.Empty(b.Sources);
    }

    [Theory]
    [InlineData("82cb000100000001")]           // SC=2 but room for one source
    [InlineData("81cb000200000001" + "09616200")] // reason length 9 in a 3-byte tail
    public void Truncated_BYE_is_a_protocol_error(string hex)
    {
        Assert.Throws<MediaFormatException>(() => RtcpPacket.ParseCompound(Convert.FromHexString(hex)));
    }
}
