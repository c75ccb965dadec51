using System.Buffers.Binary;

namespace Pinhole.Relay.WebRtc;

/// <summary>What a browser asks for in its RTCP: retransmissions (generic NACK, RFC 4585 §6.2.1) and
/// keyframes (PLI §6.3.1, FIR RFC 5104 §4.3.1), plus the loss it reports (RFC 3550 §6.4.2).</summary>
internal static class RtcpFeedbackReader
{
    public readonly record struct Feedback(List<ushort> Nacked, bool KeyframeRequested, int? FractionLost, int? CumulativeLost);

    /// <summary>Walks a compound RTCP packet; stops quietly at the first malformed part (it came authenticated, from the viewer).</summary>
    public static Feedback Read(ReadOnlySpan<byte> compound, uint mediaSsrc)
    {
        var nacked = new List<ushort>();
        var keyframe = false;
        int? fraction = null, cumulative = null;
        while (compound.Length >= 4)
        {
            if (compound[0] >> 6 != 2) break;
            var fmt = compound[0] & 0x1F;
            var type = compound[1];
            var length = 4 * (BinaryPrimitives.ReadUInt16BigEndian(compound[2..]) + 1);
            if (length > compound.Length) break;
            var p = compound[..length];
            compound = compound[length..];
            if (type == 205 && fmt == 1 && p.Length >= 12 && BinaryPrimitives.ReadUInt32BigEndian(p[8..]) == mediaSsrc)
            {
                for (var o = 12; o + 4 <= p.Length; o += 4)
                {
                    var pid = BinaryPrimitives.ReadUInt16BigEndian(p[o..]);
                    var blp = BinaryPrimitives.ReadUInt16BigEndian(p[(o + 2)..]);
                    nacked.Add(pid);
                    for (var bit = 0; bit < 16; bit++)
                        if ((blp & (1 << bit)) != 0) nacked.Add(unchecked((ushort)(pid + bit + 1)));
                }
            }
            else if (type == 206 && fmt == 1 && p.Length >= 12 && BinaryPrimitives.ReadUInt32BigEndian(p[8..]) == mediaSsrc)
            {
                keyframe = true;
            }
            else if (type == 206 && fmt == 4 && p.Length >= 20)
            {
                for (var o = 12; o + 8 <= p.Length; o += 8)
                    if (BinaryPrimitives.ReadUInt32BigEndian(p[o..]) == mediaSsrc) keyframe = true;
            }
            else if (type == 201)
            {
                var count = fmt;
                for (var i = 0; i < count && 8 + 24 * (i + 1) <= p.Length; i++)
                {
                    var b = p[(8 + 24 * i)..];
                    if (BinaryPrimitives.ReadUInt32BigEndian(b) != mediaSsrc) continue;
                    fraction = b[4];
                    var lost = (b[5] << 16) | (b[6] << 8) | b[7];
                    if ((lost & 0x800000) != 0) lost |= unchecked((int)0xff000000);
                    cumulative = lost;
                }
            }
        }
        return new Feedback(nacked, keyframe, fraction, cumulative);
    }
}
