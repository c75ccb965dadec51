using System.Globalization;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Sdp;

/// <summary>
/// Builds the SDP an RTSP server answers DESCRIBE with, from the tracks of a stream. Each track
/// gets <c>a=control:trackID=N</c> (N = its index) and the fmtp its payload format requires.
/// </summary>
public static class SdpWriter
{
    /// <summary>The control attribute of track <paramref name="index"/>.</summary>
    public static string TrackControl(int index) => "trackID=" + index.ToString(CultureInfo.InvariantCulture);

    /// <summary>Builds a session description for <paramref name="tracks"/>; dynamic payload types start at 96.</summary>
    public static SessionDescription Build(IReadOnlyList<TrackInfo> tracks, string sessionName = "Pinhole")
    {
        ArgumentNullException.ThrowIfNull(tracks);
        var sdp = new SessionDescription { SessionName = sessionName, Origin = "- 0 0 IN IP4 127.0.0.1" };
        sdp.Attributes.Add(new("tool", "pinhole"));
        sdp.Attributes.Add(new("range", "npt=0-"));
        sdp.Attributes.Add(new("control", "*"));
        var nextDynamic = 96;
        for (var i = 0; i < tracks.Count; i++)
        {
            var t = tracks[i];
            var pt = t.Codec switch
            {
                MediaCodec.PcmAlaw when t.ClockRate == 8000 && t.Channels <= 1 => 8,
                MediaCodec.PcmMulaw when t.ClockRate == 8000 && t.Channels <= 1 => 0,
                _ => nextDynamic++,
            };
            var ptText = pt.ToString(CultureInfo.InvariantCulture);
            var m = new MediaDescription(t.IsVideo ? "video" : "audio", 0, "RTP/AVP", [ptText]);
            string rtpmap;
            string? fmtp = null;
            switch (t.Codec)
            {
                case MediaCodec.H264:
                    rtpmap = "H264/90000";
                    fmtp = H264Fmtp(t);
                    break;
                case MediaCodec.H265:
                    rtpmap = "H265/90000";
                    fmtp = H265Fmtp(t);
                    break;
                case MediaCodec.Aac:
                    rtpmap = Inv($"mpeg4-generic/{t.ClockRate}/{Math.Max(1, t.Channels)}");
                    // RFC 3640 §3.3.6 AAC-hbr: 13-bit sizes, 3-bit indexes.
                    fmtp = "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config="
                        + Convert.ToHexStringLower(t.AudioSpecificConfig.Span);
                    break;
                case MediaCodec.PcmAlaw:
                    rtpmap = Inv($"PCMA/{t.ClockRate}") + (t.Channels > 1 ? Inv($"/{t.Channels}") : "");
                    break;
                case MediaCodec.PcmMulaw:
                    rtpmap = Inv($"PCMU/{t.ClockRate}") + (t.Channels > 1 ? Inv($"/{t.Channels}") : "");
                    break;
                default:
                    throw new ArgumentException($"no SDP mapping for {t.Codec}", nameof(tracks));
            }
            m.Attributes.Add(new("rtpmap", ptText + " " + rtpmap));
            if (fmtp is not null) m.Attributes.Add(new("fmtp", ptText + " " + fmtp));
            if (t.IsVideo && t.Width > 0 && t.Height > 0)
                m.Attributes.Add(new("framesize", Inv($"{ptText} {t.Width}-{t.Height}")));
            m.Attributes.Add(new("control", TrackControl(i)));
            sdp.Media.Add(m);
        }
        return sdp;
    }

    private static string H264Fmtp(TrackInfo t)
    {
        // RFC 6184 §8.1: packetization-mode=1 (FU-A/STAP-A), profile-level-id = SPS bytes 1..3.
        var sps = t.ParameterSets.FirstOrDefault(p => p.Length > 3 && (p.Span[0] & 0x1f) == 7);
        var pps = t.ParameterSets.Where(p => p.Length > 0 && (p.Span[0] & 0x1f) == 8);
        var s = "packetization-mode=1";
        if (sps.Length > 3) s += ";profile-level-id=" + Convert.ToHexStringLower(sps.Span.Slice(1, 3));
        var sets = new[] { sps }.Where(p => p.Length > 0).Concat(pps).Select(p => Convert.ToBase64String(p.Span)).ToList();
        if (sets.Count > 0) s += ";sprop-parameter-sets=" + string.Join(',', sets);
        return s;
    }

    private static string? H265Fmtp(TrackInfo t)
    {
        // RFC 7798 §7.1: sprop-vps, sprop-sps, sprop-pps, base64 of each NAL unit.
        var parts = new List<string>();
        foreach (var (name, type) in new[] { ("sprop-vps", 32), ("sprop-sps", 33), ("sprop-pps", 34) })
        {
            var sets = t.ParameterSets.Where(p => p.Length > 1 && ((p.Span[0] >> 1) & 0x3f) == type).Select(p => Convert.ToBase64String(p.Span)).ToList();
            if (sets.Count > 0) parts.Add(name + "=" + string.Join(',', sets));
        }
        return parts.Count == 0 ? null : string.Join(';', parts);
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
