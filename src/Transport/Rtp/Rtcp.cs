using System.Buffers.Binary;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtp;

/// <summary>One reception report block (RFC 3550 §6.4.1).</summary>
/// <param name="Ssrc">The source this block reports on.</param>
/// <param name="FractionLost">Fraction lost since the last report, in 1/256.</param>
/// <param name="CumulativeLost">Packets lost since the start (24-bit signed).</param>
/// <param name="HighestSequence">Extended highest sequence number received.</param>
/// <param name="Jitter">Interarrival jitter in timestamp units.</param>
/// <param name="LastSr">LSR: middle 32 bits of the last SR's NTP timestamp.</param>
/// <param name="DelaySinceLastSr">DLSR in 1/65536 s.</param>
public readonly record struct RtcpReportBlock(uint Ssrc, byte FractionLost, int CumulativeLost, uint HighestSequence, uint Jitter, uint LastSr, uint DelaySinceLastSr);

/// <summary>
/// An RTCP SR or RR (RFC 3550 §6.4) or BYE (§6.6); other packet types are reported with only their
/// type and first SSRC.
/// </summary>
public sealed class RtcpPacket
{
    /// <summary>PT of a sender report.</summary>
    public const byte SenderReportType = 200;

    /// <summary>PT of a receiver report.</summary>
    public const byte ReceiverReportType = 201;

    /// <summary>PT of a BYE: the listed sources leave the session (RFC 3550 §6.6).</summary>
    public const byte ByeType = 203;

    /// <summary>The packet type (200 SR, 201 RR, 202 SDES, 203 BYE, …).</summary>
    public byte PacketType { get; init; }

    /// <summary>SSRC of the sender of this packet.</summary>
    public uint Ssrc { get; init; }

    /// <summary>SR only: NTP timestamp (64-bit fixed point).</summary>
    public ulong NtpTimestamp { get; init; }

    /// <summary>SR only: the RTP timestamp matching <see cref="NtpTimestamp"/>.</summary>
    public uint RtpTimestamp { get; init; }

    /// <summary>SR only: packets sent.</summary>
    public uint PacketCount { get; init; }

    /// <summary>SR only: payload octets sent.</summary>
    public uint OctetCount { get; init; }

    /// <summary>Reception report blocks (SR and RR).</summary>
    public IReadOnlyList<RtcpReportBlock> Reports { get; init; } = [];

    /// <summary>BYE only: the SSRC/CSRC identifiers that leave (the first is also <see cref="Ssrc"/>).</summary>
    public IReadOnlyList<uint> Sources { get; init; } = [];

    /// <summary>BYE only: the optional reason for leaving (UTF-8 text), or null.</summary>
    public string? Reason { get; init; }

    /// <summary>Parses a compound RTCP packet (RFC 3550 §6.1) into its parts.</summary>
    internal static IReadOnlyList<RtcpPacket> ParseCompound(ReadOnlySpan<byte> data)
    {
        var list = new List<RtcpPacket>();
        while (data.Length > 0)
        {
            if (data.Length < 4) throw new MediaFormatException("RTCP packet shorter than its 4-byte header");
            if (data[0] >> 6 != 2) throw new MediaFormatException($"RTCP version {data[0] >> 6}, expected 2");
            var length = 4 * (BinaryPrimitives.ReadUInt16BigEndian(data[2..]) + 1);
            if (length > data.Length) throw new MediaFormatException("RTCP length field longer than the data");
            list.Add(ParseOne(data[..length]));
            data = data[length..];
        }
        return list;
    }

    private static RtcpPacket ParseOne(ReadOnlySpan<byte> p)
    {
        var count = p[0] & 0x1f;
        var type = p[1];
        if (type == ByeType) return ParseBye(p, count);
        if (type is not (SenderReportType or ReceiverReportType))
            return new RtcpPacket { PacketType = type, Ssrc = p.Length >= 8 ? BinaryPrimitives.ReadUInt32BigEndian(p[4..]) : 0 };
        var offset = type == SenderReportType ? 28 : 8;
        if (p.Length < offset + 24 * count) throw new MediaFormatException("RTCP report shorter than its report blocks");
        var reports = new RtcpReportBlock[count];
        for (var i = 0; i < count; i++)
        {
            var b = p[(offset + 24 * i)..];
            var lost = (b[5] << 16) | (b[6] << 8) | b[7];
            if ((lost & 0x800000) != 0) lost |= unchecked((int)0xff000000); // 24-bit signed
            reports[i] = new RtcpReportBlock(BinaryPrimitives.ReadUInt32BigEndian(b), b[4], lost,
                BinaryPrimitives.ReadUInt32BigEndian(b[8..]), BinaryPrimitives.ReadUInt32BigEndian(b[12..]),
                BinaryPrimitives.ReadUInt32BigEndian(b[16..]), BinaryPrimitives.ReadUInt32BigEndian(b[20..]));
        }
        var packet = new RtcpPacket { PacketType = type, Ssrc = BinaryPrimitives.ReadUInt32BigEndian(p[4..]), Reports = reports };
        if (type == SenderReportType)
        {
            packet = new RtcpPacket
            {
                PacketType = type,
                Ssrc = packet.Ssrc,
                Reports = reports,
                NtpTimestamp = BinaryPrimitives.ReadUInt64BigEndian(p[8..]),
                RtpTimestamp = BinaryPrimitives.ReadUInt32BigEndian(p[16..]),
                PacketCount = BinaryPrimitives.ReadUInt32BigEndian(p[20..]),
                OctetCount = BinaryPrimitives.ReadUInt32BigEndian(p[24..]),
            };
        }
        return packet;
    }

    private static RtcpPacket ParseBye(ReadOnlySpan<byte> p, int count)
    {
        // §6.6: V P SC PT=203 length, SC identifiers, then optionally a length octet and that many
        // octets of reason, padded to 32 bits.
        var end = 4 + 4 * count;
        if (p.Length < end) throw new MediaFormatException("RTCP BYE shorter than its source count");
        var sources = new uint[count];
        for (var i = 0; i < count; i++) sources[i] = BinaryPrimitives.ReadUInt32BigEndian(p[(4 + 4 * i)..]);
        string? reason = null;
        if (p.Length > end && p[end] > 0)
        {
            var length = p[end];
            if (p.Length < end + 1 + length) throw new MediaFormatException("RTCP BYE reason longer than the packet");
            reason = System.Text.Encoding.UTF8.GetString(p.Slice(end + 1, length));
        }
        return new RtcpPacket { PacketType = ByeType, Ssrc = count > 0 ? sources[0] : 0, Sources = sources, Reason = reason };
    }

    /// <summary>Serializes an SR or RR (with its report blocks, at most 31), or a BYE (its sources, at most 31, and reason).</summary>
    public byte[] ToArray()
    {
        if (PacketType == ByeType) return ByeToArray();
        if (PacketType is not (SenderReportType or ReceiverReportType)) throw new InvalidOperationException("only SR, RR and BYE can be written");
        if (Reports.Count > 31) throw new InvalidOperationException("at most 31 report blocks");
        var offset = PacketType == SenderReportType ? 28 : 8;
        var b = new byte[offset + 24 * Reports.Count];
        b[0] = (byte)(0x80 | Reports.Count);
        b[1] = PacketType;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)(b.Length / 4 - 1));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), Ssrc);
        if (PacketType == SenderReportType)
        {
            BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), NtpTimestamp);
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), RtpTimestamp);
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(20), PacketCount);
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(24), OctetCount);
        }
        for (var i = 0; i < Reports.Count; i++)
        {
            var r = Reports[i];
            var s = b.AsSpan(offset + 24 * i);
            BinaryPrimitives.WriteUInt32BigEndian(s, r.Ssrc);
            s[4] = r.FractionLost;
            s[5] = (byte)(r.CumulativeLost >> 16); s[6] = (byte)(r.CumulativeLost >> 8); s[7] = (byte)r.CumulativeLost;
            BinaryPrimitives.WriteUInt32BigEndian(s[8..], r.HighestSequence);
            BinaryPrimitives.WriteUInt32BigEndian(s[12..], r.Jitter);
            BinaryPrimitives.WriteUInt32BigEndian(s[16..], r.LastSr);
            BinaryPrimitives.WriteUInt32BigEndian(s[20..], r.DelaySinceLastSr);
        }
        return b;
    }

    private byte[] ByeToArray()
    {
        var sources = Sources.Count > 0 ? Sources : [Ssrc];
        if (sources.Count > 31) throw new InvalidOperationException("at most 31 sources in one BYE");
        var reason = Reason is null ? [] : System.Text.Encoding.UTF8.GetBytes(Reason);
        if (reason.Length > 255) throw new InvalidOperationException("a BYE reason is at most 255 bytes");
        var length = 4 + 4 * sources.Count + (Reason is null ? 0 : 1 + reason.Length);
        var b = new byte[(length + 3) / 4 * 4]; // zero padding to 32 bits (§6.6)
        b[0] = (byte)(0x80 | sources.Count);
        b[1] = ByeType;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)(b.Length / 4 - 1));
        for (var i = 0; i < sources.Count; i++) BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4 + 4 * i), sources[i]);
        if (Reason is not null)
        {
            b[4 + 4 * sources.Count] = (byte)reason.Length;
            reason.CopyTo(b.AsSpan(5 + 4 * sources.Count));
        }
        return b;
    }
}
