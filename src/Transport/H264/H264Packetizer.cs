using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.H264;

/// <summary>
/// RTP packetizer for H.264 (RFC 6184, packetization-mode=1): single NAL unit packets, FU-A for
/// NAL units larger than the packet, STAP-A for SPS+PPS re-sent before a keyframe that lacks them.
/// </summary>
internal sealed class H264Packetizer : NalUnitPacketizer
{
    /// <summary>NAL unit type of a sequence parameter set (H.264 Table 7-1).</summary>
    public const int NalTypeSps = 7;

    /// <summary>NAL unit type of a picture parameter set (H.264 Table 7-1).</summary>
    public const int NalTypePps = 8;

    /// <summary>RTP payload type of STAP-A (RFC 6184 §5.7.1).</summary>
    public const int NalTypeStapA = 24;

    /// <summary>RTP payload type of FU-A (RFC 6184 §5.8).</summary>
    public const int NalTypeFuA = 28;

    /// <summary>Creates the packetizer for an H.264 track.</summary>
    /// <param name="track">The track (codec must be H.264); its SPS and PPS are re-sent before keyframes that lack them.</param>
    /// <param name="payloadType">Dynamic payload type, usually 96.</param>
    /// <param name="options">Packet size and starting points; null for defaults.</param>
    public H264Packetizer(TrackInfo track, byte payloadType = 96, RtpPacketizerOptions? options = null)
        : base(Checked(track), payloadType, options)
    {
    }

    private static TrackInfo Checked(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        if (track.Codec != MediaCodec.H264) throw new ArgumentException("track is not H.264", nameof(track));
        return track;
    }

    private protected override int NalHeaderSize => 1;

    private protected override int AllParameterSetsMask => 0b11;


    private protected override int RequiredParameterSetMask(ReadOnlySpan<byte> nal) => (nal[0] & 0x1F) switch
    {
        NalTypeSps => 0b01,
        NalTypePps => 0b10,
        _ => 0,
    };

    private protected override int WriteFragmentHeader(ReadOnlySpan<byte> nalHeader, bool start, bool end, Span<byte> destination)
    {
        // FU indicator keeps F and NRI of the NAL unit; the FU header carries S, E and the original type.
        destination[0] = (byte)((nalHeader[0] & 0xE0) | NalTypeFuA);
        destination[1] = (byte)((start ? 0x80 : 0) | (end ? 0x40 : 0) | (nalHeader[0] & 0x1F));
        return 2;
    }

    private protected override int WriteAggregationHeader(IReadOnlyList<ReadOnlyMemory<byte>> nals, Span<byte> destination)
    {
        // RFC 6184 §5.7: F is the OR of the F bits, NRI the largest NRI of the aggregated units.
        int f = 0, nri = 0;
        foreach (var n in nals)
        {
            f |= n.Span[0] & 0x80;
            nri = Math.Max(nri, n.Span[0] & 0x60);
        }
        destination[0] = (byte)(f | nri | NalTypeStapA);
        return 1;
    }
}
