using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.H265;

/// <summary>
/// RTP packetizer for H.265 (RFC 7798, no DONL: sprop-max-don-diff=0): single NAL unit packets,
/// FU for NAL units larger than the packet, AP for VPS+SPS+PPS re-sent before a keyframe that lacks them.
/// </summary>
internal sealed class H265Packetizer : NalUnitPacketizer
{
    /// <summary>NAL unit type of a video parameter set (H.265 Table 7-1).</summary>
    public const int NalTypeVps = 32;

    /// <summary>NAL unit type of a sequence parameter set.</summary>
    public const int NalTypeSps = 33;

    /// <summary>NAL unit type of a picture parameter set.</summary>
    public const int NalTypePps = 34;

    /// <summary>Payload type of an aggregation packet (RFC 7798 §4.4.2).</summary>
    public const int NalTypeAp = 48;

    /// <summary>Payload type of a fragmentation unit (RFC 7798 §4.4.3).</summary>
    public const int NalTypeFu = 49;

    /// <summary>Creates the packetizer for an H.265 track.</summary>
    /// <param name="track">The track (codec must be H.265); its VPS, SPS and PPS are re-sent before keyframes that lack them.</param>
    /// <param name="payloadType">Dynamic payload type, usually 96.</param>
    /// <param name="options">Packet size and starting points; null for defaults.</param>
    public H265Packetizer(TrackInfo track, byte payloadType = 96, RtpPacketizerOptions? options = null)
        : base(Checked(track), payloadType, options)
    {
    }

    private static TrackInfo Checked(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        if (track.Codec != MediaCodec.H265) throw new ArgumentException("track is not H.265", nameof(track));
        return track;
    }

    private static int NalType(ReadOnlySpan<byte> nal) => (nal[0] >> 1) & 0x3F;

    private protected override int NalHeaderSize => 2;

    private protected override int AllParameterSetsMask => 0b111;


    private protected override int RequiredParameterSetMask(ReadOnlySpan<byte> nal) => NalType(nal) switch
    {
        NalTypeVps => 0b001,
        NalTypeSps => 0b010,
        NalTypePps => 0b100,
        _ => 0,
    };

    private protected override int WriteFragmentHeader(ReadOnlySpan<byte> nalHeader, bool start, bool end, Span<byte> destination)
    {
        // PayloadHdr keeps F, LayerId and TID of the NAL unit with Type=49; the FU header carries S, E and FuType.
        destination[0] = (byte)((nalHeader[0] & 0x81) | (NalTypeFu << 1));
        destination[1] = nalHeader[1];
        destination[2] = (byte)((start ? 0x80 : 0) | (end ? 0x40 : 0) | NalType(nalHeader));
        return 3;
    }

    private protected override int WriteAggregationHeader(IReadOnlyList<ReadOnlyMemory<byte>> nals, Span<byte> destination)
    {
        // RFC 7798 §4.4.2: F is the OR of the F bits, LayerId and TID the lowest of the aggregated units.
        int f = 0, layerId = 63, tid = 7;
        foreach (var n in nals)
        {
            var h = n.Span;
            f |= h[0] & 0x80;
            layerId = Math.Min(layerId, ((h[0] & 0x01) << 5) | (h[1] >> 3));
            tid = Math.Min(tid, h[1] & 0x07);
        }
        destination[0] = (byte)(f | (NalTypeAp << 1) | (layerId >> 5));
        destination[1] = (byte)(((layerId & 0x1F) << 3) | tid);
        return 2;
    }
}
