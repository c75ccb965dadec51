using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtp;

/// <summary>A generic NACK (RFC 4585 §6.2.1): the receiver lost these RTP packets of a source.</summary>
/// <param name="SenderSsrc">SSRC of the receiver sending the feedback.</param>
/// <param name="MediaSsrc">SSRC of the media source the packets belong to.</param>
/// <param name="LostSequenceNumbers">The lost sequence numbers, PID and BLP expanded, in packet order.</param>
public sealed record RtcpNack(uint SenderSsrc, uint MediaSsrc, IReadOnlyList<ushort> LostSequenceNumbers)
{
    /// <summary>
    /// Writes the NACK as one RTPFB packet (PT 205, FMT 1), packing the sequence numbers into
    /// PID + BLP entries in the order given (a number more than 16 after the entry's PID, or before
    /// it, starts a new entry).
    /// </summary>
    public byte[] ToArray()
    {
        if (LostSequenceNumbers.Count == 0) throw new InvalidOperationException("a NACK lists at least one sequence number");
        var entries = new List<(ushort Pid, ushort Blp)>();
        foreach (var sequence in LostSequenceNumbers)
        {
            if (entries.Count > 0)
            {
                var (pid, blp) = entries[^1];
                var distance = (ushort)(sequence - pid);
                if (distance == 0) continue;
                if (distance <= 16)
                {
                    entries[^1] = (pid, (ushort)(blp | (1 << (distance - 1))));
                    continue;
                }
            }
            entries.Add((sequence, 0));
        }
        var bytes = RtcpFeedback.WriteHeader(RtcpFeedback.TransportFeedbackType, 1, SenderSsrc, MediaSsrc, 4 * entries.Count);
        for (var i = 0; i < entries.Count; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(12 + 4 * i), entries[i].Pid);
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(14 + 4 * i), entries[i].Blp);
        }
        return bytes;
    }
}

/// <summary>A Picture Loss Indication (RFC 4585 §6.3.1): the receiver wants a keyframe.</summary>
/// <param name="SenderSsrc">SSRC of the receiver sending the feedback.</param>
/// <param name="MediaSsrc">SSRC of the media source.</param>
public readonly record struct RtcpPictureLossIndication(uint SenderSsrc, uint MediaSsrc)
{
    /// <summary>Writes the PLI as one PSFB packet (PT 206, FMT 1, no FCI).</summary>
    public byte[] ToArray() => RtcpFeedback.WriteHeader(RtcpFeedback.PayloadFeedbackType, 1, SenderSsrc, MediaSsrc, 0);
}

/// <summary>A Full Intra Request entry (RFC 5104 §4.3.1): the receiver asks this source for a keyframe.</summary>
/// <param name="SenderSsrc">SSRC of the receiver sending the feedback.</param>
/// <param name="MediaSsrc">SSRC of the media source asked (from the FCI entry).</param>
/// <param name="SequenceNumber">The command sequence number; a repeat with the same number is the same request.</param>
public readonly record struct RtcpFullIntraRequest(uint SenderSsrc, uint MediaSsrc, byte SequenceNumber)
{
    /// <summary>Writes the FIR as one PSFB packet (PT 206, FMT 4) with one FCI entry; the header's media SSRC is 0 (§4.3.1.1).</summary>
    public byte[] ToArray()
    {
        var bytes = RtcpFeedback.WriteHeader(RtcpFeedback.PayloadFeedbackType, 4, SenderSsrc, 0, 8);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), MediaSsrc);
        bytes[16] = SequenceNumber;
        return bytes;
    }
}

/// <summary>The reception reports one receiver sent, from an RR or an SR (RFC 3550 §6.4).</summary>
/// <param name="ReporterSsrc">SSRC of the receiver that sent the report.</param>
/// <param name="Reports">Its report blocks: fraction lost, cumulative lost, jitter per source.</param>
public sealed record RtcpReceiverReport(uint ReporterSsrc, IReadOnlyList<RtcpReportBlock> Reports);

/// <summary>
/// What a WebRTC receiver says about the media it gets, read from one compound RTCP packet
/// (after SRTCP unprotect): generic NACKs (RFC 4585 §6.2.1), PLIs (§6.3.1), FIRs (RFC 5104
/// §4.3.1), reception reports (RFC 3550 §6.4) and BYEs. Other packet types and feedback formats
/// (SDES, transport-wide congestion control, REMB, …) are skipped.
/// </summary>
public sealed class RtcpFeedback
{
    /// <summary>PT of transport-layer feedback (RFC 4585 §6.1).</summary>
    public const byte TransportFeedbackType = 205;

    /// <summary>PT of payload-specific feedback (RFC 4585 §6.1).</summary>
    public const byte PayloadFeedbackType = 206;

    /// <summary>FMT of a generic NACK in a <see cref="TransportFeedbackType"/> packet.</summary>
    public const int GenericNackFormat = 1;

    /// <summary>FMT of a PLI in a <see cref="PayloadFeedbackType"/> packet.</summary>
    public const int PictureLossFormat = 1;

    /// <summary>FMT of a FIR in a <see cref="PayloadFeedbackType"/> packet.</summary>
    public const int FullIntraRequestFormat = 4;

    /// <summary>Generic NACKs.</summary>
    public IReadOnlyList<RtcpNack> Nacks { get; init; } = [];

    /// <summary>Picture Loss Indications.</summary>
    public IReadOnlyList<RtcpPictureLossIndication> PictureLossIndications { get; init; } = [];

    /// <summary>Full Intra Requests, one per FCI entry.</summary>
    public IReadOnlyList<RtcpFullIntraRequest> FullIntraRequests { get; init; } = [];

    /// <summary>Reception reports, from RRs and SRs.</summary>
    public IReadOnlyList<RtcpReceiverReport> ReceiverReports { get; init; } = [];

    /// <summary>Sources that said BYE.</summary>
    public IReadOnlyList<uint> ByeSources { get; init; } = [];

    /// <summary>
    /// True when <paramref name="packet"/> (already told apart from STUN and DTLS, first byte 128..191)
    /// is RTCP rather than RTP: its second byte, the RTCP packet type, is 192..223 (RFC 5761 §4).
    /// </summary>
    internal static bool IsRtcp(ReadOnlySpan<byte> packet) => packet.Length >= 2 && packet[1] is >= 192 and <= 223;

    /// <summary>Parses a compound RTCP packet.</summary>
    /// <exception cref="MediaFormatException">The packet breaks a framing rule of RFC 3550 §6.1 or a feedback format rule.</exception>
    public static RtcpFeedback Parse(ReadOnlySpan<byte> compound)
    {
        var nacks = new List<RtcpNack>();
        var plis = new List<RtcpPictureLossIndication>();
        var firs = new List<RtcpFullIntraRequest>();
        var reports = new List<RtcpReceiverReport>();
        var byes = new List<uint>();
        if (compound.IsEmpty) throw new MediaFormatException("empty RTCP packet");
        while (compound.Length > 0)
        {
            if (compound.Length < 4) throw new MediaFormatException("RTCP packet shorter than its 4-byte header");
            if (compound[0] >> 6 != 2) throw new MediaFormatException($"RTCP version {compound[0] >> 6}, expected 2");
            var length = 4 * (BinaryPrimitives.ReadUInt16BigEndian(compound[2..]) + 1);
            if (length > compound.Length) throw new MediaFormatException("RTCP length field longer than the data");
            var packet = compound[..length];
            compound = compound[length..];
            if ((packet[0] & 0x20) != 0)
            {
                // §6.4.1: the last octet counts the padding, itself included.
                var padding = packet[^1];
                if (padding == 0 || padding > packet.Length - 4) throw new MediaFormatException($"RTCP padding of {padding} bytes does not fit the packet");
                packet = packet[..^padding];
            }
            var format = packet[0] & 0x1F;
            switch (packet[1])
            {
                case RtcpPacket.SenderReportType or RtcpPacket.ReceiverReportType:
                    var report = RtcpPacket.ParseCompound(WithoutPadding(packet))[0];
                    reports.Add(new RtcpReceiverReport(report.Ssrc, report.Reports));
                    break;
                case RtcpPacket.ByeType:
                    byes.AddRange(RtcpPacket.ParseCompound(WithoutPadding(packet))[0].Sources);
                    break;
                case TransportFeedbackType:
                    if (format == GenericNackFormat) nacks.Add(ParseNack(packet));
                    break;
                case PayloadFeedbackType:
                    if (format == PictureLossFormat) plis.Add(ParsePli(packet));
                    else if (format == FullIntraRequestFormat) ParseFir(packet, firs);
                    break;
            }
        }
        return new RtcpFeedback { Nacks = nacks, PictureLossIndications = plis, FullIntraRequests = firs, ReceiverReports = reports, ByeSources = byes };
    }

    /// <summary>Parses a compound RTCP packet; false (never an exception) when it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> compound, [NotNullWhen(true)] out RtcpFeedback? feedback)
    {
        try
        {
            feedback = Parse(compound);
            return true;
        }
        catch (MediaFormatException)
        {
            feedback = null;
            return false;
        }
    }

    /// <summary>A copy of one (already unpadded) packet with its length field and P bit rewritten, for <see cref="RtcpPacket.ParseCompound"/>.</summary>
    private static byte[] WithoutPadding(ReadOnlySpan<byte> packet)
    {
        // Whole 32-bit words only: RtcpPacket's parser reads the length field.
        var words = packet.Length / 4;
        var copy = packet[..(4 * words)].ToArray();
        copy[0] &= 0xDF;
        BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(2), (ushort)(words - 1));
        return copy;
    }

    private static (uint Sender, uint Media) FeedbackHeader(ReadOnlySpan<byte> packet, string what)
    {
        // RFC 4585 §6.1: header, SSRC of packet sender, SSRC of media source, then the FCI.
        if (packet.Length < 12) throw new MediaFormatException($"RTCP {what} shorter than the 12-byte feedback header");
        return (BinaryPrimitives.ReadUInt32BigEndian(packet[4..]), BinaryPrimitives.ReadUInt32BigEndian(packet[8..]));
    }

    private static RtcpNack ParseNack(ReadOnlySpan<byte> packet)
    {
        var (sender, media) = FeedbackHeader(packet, "NACK");
        var fci = packet[12..];
        if (fci.Length == 0 || fci.Length % 4 != 0) throw new MediaFormatException($"generic NACK FCI of {fci.Length} bytes is not a whole number of 4-byte entries");
        var lost = new List<ushort>();
        for (var i = 0; i < fci.Length; i += 4)
        {
            // §6.2.1: PID is lost; bit k of BLP (least significant first) says PID + k + 1 is lost too.
            var pid = BinaryPrimitives.ReadUInt16BigEndian(fci[i..]);
            var blp = BinaryPrimitives.ReadUInt16BigEndian(fci[(i + 2)..]);
            lost.Add(pid);
            for (var k = 0; k < 16; k++)
                if ((blp & (1 << k)) != 0) lost.Add((ushort)(pid + k + 1));
        }
        return new RtcpNack(sender, media, lost);
    }

    private static RtcpPictureLossIndication ParsePli(ReadOnlySpan<byte> packet)
    {
        var (sender, media) = FeedbackHeader(packet, "PLI");
        return new RtcpPictureLossIndication(sender, media);
    }

    private static void ParseFir(ReadOnlySpan<byte> packet, List<RtcpFullIntraRequest> firs)
    {
        var (sender, _) = FeedbackHeader(packet, "FIR");
        var fci = packet[12..];
        if (fci.Length == 0 || fci.Length % 8 != 0) throw new MediaFormatException($"FIR FCI of {fci.Length} bytes is not a whole number of 8-byte entries");
        // RFC 5104 §4.3.1.1: each entry is the SSRC asked, a command sequence number, 24 reserved bits.
        for (var i = 0; i < fci.Length; i += 8)
            firs.Add(new RtcpFullIntraRequest(sender, BinaryPrimitives.ReadUInt32BigEndian(fci[i..]), fci[i + 4]));
    }

    /// <summary>A feedback packet with its common header written and <paramref name="fciLength"/> zero bytes of FCI.</summary>
    internal static byte[] WriteHeader(byte packetType, int format, uint senderSsrc, uint mediaSsrc, int fciLength)
    {
        var bytes = new byte[12 + fciLength];
        if (bytes.Length / 4 - 1 > ushort.MaxValue) throw new InvalidOperationException("RTCP feedback packet too long");
        bytes[0] = (byte)(0x80 | format);
        bytes[1] = packetType;
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)(bytes.Length / 4 - 1));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), senderSsrc);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), mediaSsrc);
        return bytes;
    }
}
