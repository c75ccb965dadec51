using Pinhole.Transport.Rtp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtp;

/// <summary>
/// The RTSP client lends each interleaved packet from its read buffer and overwrites it with the
/// next read. A depacketizer must therefore copy whatever outlives <see cref="RtpDepacketizer.Push"/>:
/// fed from one buffer that is scribbled over after every packet, it must emit exactly the access
/// units it emits from packets that each own their bytes.
/// </summary>
public class ReusedPacketBufferTests
{
    [Theory]
    [InlineData("h264-aac", 0)] // single NAL units, STAP-A, FU-A
    [InlineData("h264-aac", 1)] // AAC-hbr, several AUs in one packet
    [InlineData("h265", 0)]     // single, AP, FU
    [InlineData("pcma", 0)]
    [InlineData("pcmu", 0)]
    public void Units_from_a_reused_buffer_equal_units_from_owned_packets(string capture, int track)
    {
        var (_, owned) = Captures.Depacketize(capture, track);
        Assert.NotEmpty(owned.Units);

        var sdp = Captures.Sdp(capture);
        Assert.True(Pinhole.Transport.Rtsp.RtpDepacketizerFactory.TryCreate(sdp.Media[track], track, out var depacketizer));
        var lent = new CollectingOutput();
        var buffer = new byte[65536];
        foreach (var frame in Captures.Stream(capture).Frames.Where(f => f.Channel == 2 * track))
        {
            frame.Payload.Span.CopyTo(buffer);
            depacketizer!.Push(RtpPacket.Parse(buffer.AsMemory(0, frame.Payload.Length)), lent);
            buffer.AsSpan().Fill(0xEE); // the next read lands here
        }

        Assert.Equal(owned.Units.Count, lent.Units.Count);
        for (var i = 0; i < owned.Units.Count; i++)
        {
            var (a, b) = (owned.Units[i], lent.Units[i]);
            Assert.Equal((a.Pts, a.IsKeyframe), (b.Pts, b.IsKeyframe));
            Assert.True(a.Data.Span.SequenceEqual(b.Data.Span), $"unit {i} of {capture} track {track} changed when the packet buffer was reused");
        }
    }
}
