using Pinhole.Transport.Aac;
using Pinhole.Transport.G711;
using Pinhole.Transport.H264;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.Rtsp;

/// <summary>Picks the RTP payload format (RFC 6184, 7798, 3640, 3551) for a track's codec.</summary>
public static class RtpPacketizerFactory
{
    /// <summary>Creates the packetizer for a track's codec.</summary>
    /// <param name="track">The track; its codec picks the payload format.</param>
    /// <param name="payloadType">Payload type to use; for G.711 the static type (8 A-law, 0 µ-law) is the usual choice.</param>
    /// <param name="options">Packet size and starting points; null for defaults.</param>
    public static RtpPacketizer Create(TrackInfo track, byte payloadType, RtpPacketizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(track);
        return track.Codec switch
        {
            MediaCodec.H264 => new H264Packetizer(track, payloadType, options),
            MediaCodec.H265 => new H265Packetizer(track, payloadType, options),
            MediaCodec.Aac => new AacPacketizer(track, payloadType, options),
            MediaCodec.PcmAlaw or MediaCodec.PcmMulaw => new G711Packetizer(track, payloadType, options),
            _ => throw new NotSupportedException($"no RTP packetizer for {track.Codec}"),
        };
    }
}
