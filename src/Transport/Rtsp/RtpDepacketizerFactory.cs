using Pinhole.Transport.Aac;
using Pinhole.Transport.G711;
using Pinhole.Transport.H264;
using Pinhole.Transport.H265;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Transport.Rtsp;

/// <summary>Chooses the depacketizer for an SDP media section by its rtpmap encoding name.</summary>
public static class RtpDepacketizerFactory
{
    /// <summary>
    /// A depacketizer for <paramref name="media"/>, or false when its format is not one Pinhole carries
    /// (the caller skips that track). Throws <see cref="Rtsp.RtspProtocolException"/> for a supported
    /// format with malformed parameters.
    /// </summary>
    public static bool TryCreate(MediaDescription media, int track, out RtpDepacketizer? depacketizer)
    {
        ArgumentNullException.ThrowIfNull(media);
        depacketizer = null;
        var pt = media.PayloadType;
        if (pt < 0 || !media.Protocol.StartsWith("RTP/", StringComparison.OrdinalIgnoreCase)) return false;
        var map = media.RtpMap(pt);
        if (map is null) return false;
        var fmtp = media.Fmtp(pt);
        switch (map.EncodingName.ToUpperInvariant())
        {
            case "H264":
                if (fmtp.TryGetValue("packetization-mode", out var mode) && mode == "2") return false; // interleaved mode unsupported
                depacketizer = new H264Depacketizer(track, H264Depacketizer.ParseSpropParameterSets(fmtp.GetValueOrDefault("sprop-parameter-sets")));
                return true;
            case "H265":
                // DONL fields appear only when sprop-max-don-diff > 0 (RFC 7798 §7.1); not supported.
                if (fmtp.TryGetValue("sprop-max-don-diff", out var don) && don != "0") return false;
                depacketizer = new H265Depacketizer(track, H265Depacketizer.ParseSpropParameterSets(fmtp));
                return true;
            case "MPEG4-GENERIC" when media.Media == "audio":
                if (fmtp.TryGetValue("mode", out var m) && !m.Equals("AAC-hbr", StringComparison.OrdinalIgnoreCase) && !m.Equals("AAC-lbr", StringComparison.OrdinalIgnoreCase))
                    return false;
                depacketizer = new AacDepacketizer(track, map.ClockRate, fmtp);
                return true;
            case "PCMA":
                depacketizer = new G711Depacketizer(track, MediaCodec.PcmAlaw, map.ClockRate, map.Channels);
                return true;
            case "PCMU":
                depacketizer = new G711Depacketizer(track, MediaCodec.PcmMulaw, map.ClockRate, map.Channels);
                return true;
            default:
                return false;
        }
    }
}
