using System.Diagnostics.CodeAnalysis;

namespace Pinhole.Transport.Rtp;

/// <summary>A generic NACK (RFC 4585 §6.2.1): the receiver lost these RTP packets of a source.</summary>
/// <param name="SenderSsrc">SSRC of the receiver sending the feedback.</param>
/// <param name="MediaSsrc">SSRC of the media source the packets belong to.</param>
/// <param name="LostSequenceNumbers">The lost sequence numbers, PID and BLP expanded, in packet order.</param>
public sealed record RtcpNack(uint SenderSsrc, uint MediaSsrc, IReadOnlyList<ushort> LostSequenceNumbers);

/// <summary>A Picture Loss Indication (RFC 4585 §6.3.1): the receiver wants a keyframe.</summary>
/// <param name="SenderSsrc">SSRC of the receiver sending the feedback.</param>
/// <param name="MediaSsrc">SSRC of the media source.</param>
public readonly record struct RtcpPictureLossIndication(uint SenderSsrc, uint MediaSsrc);

/// <summary>A Full Intra Request entry (RFC 5104 §4.3.1): the receiver asks this source for a keyframe.</summary>
/// <param name="SenderSsrc">SSRC of the receiver sending the feedback.</param>
/// <param name="MediaSsrc">SSRC of the media source asked (from the FCI entry).</param>
/// <param name="SequenceNumber">The command sequence number; a repeat with the same number is the same request.</param>
public readonly record struct RtcpFullIntraRequest(uint SenderSsrc, uint MediaSsrc, byte SequenceNumber);

/// <summary>The reception reports one receiver sent, from an RR or an SR (RFC 3550 §6.4).</summary>
/// <param name="ReporterSsrc">SSRC of the receiver that sent the report.</param>
/// <param name="Reports">Its report blocks: fraction lost, cumulative lost, jitter per source.</param>
public sealed record RtcpReceiverReport(uint ReporterSsrc, IReadOnlyList<RtcpReportBlock> Reports);

/// <summary>
/// What a WebRTC receiver says about the media it gets, read from one compound RTCP packet:
/// generic NACKs, PLIs, FIRs, reception reports and BYEs. Placeholder: the implementation lands
/// in a later commit.
/// </summary>
public sealed class RtcpFeedback
{
    /// <summary>PT of transport-layer feedback (RFC 4585 §6.1).</summary>
    public const byte TransportFeedbackType = 205;

    /// <summary>PT of payload-specific feedback (RFC 4585 §6.1).</summary>
    public const byte PayloadFeedbackType = 206;

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
    public static bool IsRtcp(ReadOnlySpan<byte> packet) => packet.Length >= 2 && packet[1] is >= 192 and <= 223;

    /// <summary>Parses a compound RTCP packet; throws <see cref="Rtsp.RtspProtocolException"/> when it is malformed.</summary>
    public static RtcpFeedback Parse(ReadOnlySpan<byte> compound) => throw new NotImplementedException();

    /// <summary>Parses a compound RTCP packet; false (never an exception) when it is malformed.</summary>
    public static bool TryParse(ReadOnlySpan<byte> compound, [NotNullWhen(true)] out RtcpFeedback? feedback) => throw new NotImplementedException();
}
