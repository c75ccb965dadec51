using System.Globalization;
using System.Text;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Relay.WebRtc;

/// <summary>What the relay takes from a browser's WHEP offer (RFC 8829 / RFC 8866).</summary>
internal sealed record WebRtcOffer(
    string IceUfrag,
    string IcePassword,
    IReadOnlyList<(string Algorithm, byte[] Digest)> Fingerprints,
    IReadOnlyList<OfferedMedia> Media);

/// <summary>One m= section of the offer.</summary>
internal sealed record OfferedMedia(string Kind, string Mid, MediaDescription Description);

/// <summary>What the relay will send in one m= section: the payload type, or none (inactive).</summary>
internal sealed record AnsweredMedia(OfferedMedia Offered, int PayloadType, int TrackIndex, string? Fmtp, uint Ssrc);

/// <summary>A WHEP offer the relay cannot answer; the message says why (sent back as 400/415/422).</summary>
internal sealed class WebRtcOfferException(string message) : Exception(message);

/// <summary>SDP offer/answer for a send-only ICE-lite peer (RFC 8829 §5.3, RFC 8445 §2.5).</summary>
internal static class WebRtcSdp
{
    /// <summary>Parses the offer; throws <see cref="WebRtcOfferException"/> when it is not a usable WebRTC offer.</summary>
    public static WebRtcOffer ParseOffer(string text)
    {
        SessionDescription sdp;
        try
        {
            sdp = SessionDescription.Parse(text);
        }
        catch (MediaFormatException e)
        {
            throw new WebRtcOfferException("the offer is not SDP: " + e.Message);
        }
        string? Find(string name, MediaDescription? m) => m?.Attribute(name) ?? sdp.Attributes.FirstOrDefault(a => a.Key == name).Value;
        var first = sdp.Media.FirstOrDefault() ?? throw new WebRtcOfferException("the offer has no m= section");
        var ufrag = Find("ice-ufrag", first) ?? throw new WebRtcOfferException("the offer has no a=ice-ufrag");
        var pwd = Find("ice-pwd", first) ?? throw new WebRtcOfferException("the offer has no a=ice-pwd");
        // RFC 8445 §5.3: ufrag 4-256 ice-chars, pwd 22-256.
        if (ufrag.Length is < 4 or > 256 || ufrag.Any(c => !IsIceChar(c))) throw new WebRtcOfferException("a=ice-ufrag is not 4-256 ICE characters");
        if (pwd.Length is < 22 or > 256 || pwd.Any(c => !IsIceChar(c))) throw new WebRtcOfferException("a=ice-pwd is not 22-256 ICE characters");
        var fingerprints = new List<(string, byte[])>();
        foreach (var f in sdp.Attributes.Concat(sdp.Media.SelectMany(m => m.Attributes)).Where(a => a.Key == "fingerprint" && a.Value is not null))
        {
            var parts = f.Value!.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2) continue;
            try
            {
                fingerprints.Add((parts[0].ToLowerInvariant(), Convert.FromHexString(parts[1].Replace(":", "", StringComparison.Ordinal))));
            }
            catch (FormatException)
            {
                throw new WebRtcOfferException("a=fingerprint is not hex pairs separated by colons");
            }
        }
        if (fingerprints.Count == 0) throw new WebRtcOfferException("the offer has no a=fingerprint (DTLS-SRTP is required)");
        var setup = Find("setup", first);
        if (setup is "passive") throw new WebRtcOfferException("a=setup:passive in the offer: the relay is the DTLS server, the browser must be active or actpass");
        var media = new List<OfferedMedia>();
        for (var i = 0; i < sdp.Media.Count; i++)
        {
            var m = sdp.Media[i];
            if (!m.Protocol.Contains("SAVPF", StringComparison.Ordinal) && !m.Protocol.Contains("SAVP", StringComparison.Ordinal))
                throw new WebRtcOfferException($"m={m.Media} uses {m.Protocol}; WebRTC needs UDP/TLS/RTP/SAVPF");
            media.Add(new OfferedMedia(m.Media, m.Attribute("mid") ?? i.ToString(CultureInfo.InvariantCulture), m));
        }
        return new WebRtcOffer(ufrag, pwd, fingerprints, media);
    }

    // RFC 8445 §5.3: ice-char = ALPHA / DIGIT / "+" / "/".
    private static bool IsIceChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '+' or '/';

    /// <summary>
    /// Chooses what to send in each offered section: the camera's H.264 in the first video section
    /// whose offered H.264 format has packetization-mode 1 and the camera's profile; G.711 in the
    /// first audio section offering it. Everything else is answered inactive.
    /// </summary>
    public static IReadOnlyList<AnsweredMedia> Choose(WebRtcOffer offer, IReadOnlyList<TrackInfo> tracks, Func<uint> newSsrc)
    {
        var video = IndexOf(tracks, t => t.Codec == MediaCodec.H264);
        var audio = IndexOf(tracks, t => t.Codec is MediaCodec.PcmAlaw or MediaCodec.PcmMulaw);
        var answered = new List<AnsweredMedia>();
        bool videoUsed = false, audioUsed = false;
        foreach (var m in offer.Media)
        {
            var d = m.Description;
            if (m.Kind == "video" && video >= 0 && !videoUsed && PickH264(d, tracks[video]) is { } pick)
            {
                answered.Add(new AnsweredMedia(m, pick.PayloadType, video, pick.Fmtp, newSsrc()));
                videoUsed = true;
                continue;
            }
            if (m.Kind == "audio" && audio >= 0 && !audioUsed)
            {
                var name = tracks[audio].Codec == MediaCodec.PcmAlaw ? "PCMA" : "PCMU";
                var pt = d.Formats.Select(f => int.TryParse(f, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1)
                    .FirstOrDefault(n => n >= 0 && (d.RtpMap(n)?.EncodingName.Equals(name, StringComparison.OrdinalIgnoreCase) ?? (n == (name == "PCMA" ? 8 : 0))), -1);
                if (pt >= 0 && tracks[audio].SampleRate is 0 or 8000)
                {
                    answered.Add(new AnsweredMedia(m, pt, audio, null, newSsrc()));
                    audioUsed = true;
                    continue;
                }
            }
            answered.Add(new AnsweredMedia(m, -1, -1, null, 0));
        }
        if (!videoUsed)
            throw new WebRtcOfferException(video < 0
                ? "this camera sends no H.264 video; WebRTC playback needs H.264"
                : "the offer has no H.264 with packetization-mode=1 for the camera's profile (recvonly video)");
        return answered;
    }

    private static int IndexOf(IReadOnlyList<TrackInfo> tracks, Func<TrackInfo, bool> match)
    {
        for (var i = 0; i < tracks.Count; i++) if (match(tracks[i])) return i;
        return -1;
    }

    /// <summary>The profile-level-id (6 hex digits) of the camera's SPS, or null without one.</summary>
    public static string? ProfileLevelId(TrackInfo track)
    {
        foreach (var ps in track.ParameterSets)
        {
            var nal = ps.Span;
            if (nal.Length >= 4 && (nal[0] & 0x1F) == 7) return Convert.ToHexString(nal.Slice(1, 3)).ToLowerInvariant();
        }
        return null;
    }

    private static (int PayloadType, string Fmtp)? PickH264(MediaDescription d, TrackInfo track)
    {
        var camera = ProfileLevelId(track);
        var cameraProfile = camera is null ? -1 : Convert.ToInt32(camera[..2], 16);
        (int, string)? fallback = null;
        foreach (var f in d.Formats)
        {
            if (!int.TryParse(f, NumberStyles.None, CultureInfo.InvariantCulture, out var pt)) continue;
            if (d.RtpMap(pt) is not { } map || !map.EncodingName.Equals("H264", StringComparison.OrdinalIgnoreCase) || map.ClockRate != 90000) continue;
            var fmtp = d.Fmtp(pt);
            if (!fmtp.TryGetValue("packetization-mode", out var mode) || mode != "1") continue;
            fmtp.TryGetValue("profile-level-id", out var offered);
            var offeredProfile = offered is { Length: 6 } ? Convert.ToInt32(offered[..2], 16) : 0x42;
            // RFC 6184 §8.2.2: with level-asymmetry-allowed the sender may use any level; the profile must match.
            var answer = $"level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={camera ?? offered ?? "42e01f"}";
            if (offeredProfile == cameraProfile) return (pt, answer);
            // Constrained Baseline decoders take Baseline streams without B-frames; keep as a fallback.
            fallback ??= cameraProfile == 0x42 && offeredProfile == 0x42 ? (pt, answer) : null;
        }
        return fallback;
    }

    /// <summary>Writes the answer: ICE-lite, DTLS server (a=setup:passive), rtcp-mux, BUNDLE, one host candidate per address and transport.</summary>
    public static string BuildAnswer(WebRtcOffer offer, IReadOnlyList<AnsweredMedia> media, string ufrag, string pwd, string fingerprint,
        IReadOnlyList<(string Address, int Port)> udp, IReadOnlyList<(string Address, int Port)> tcp, ulong sessionId)
    {
        var sb = new StringBuilder();
        void Line(string s) => sb.Append(s).Append("\r\n");
        Line("v=0");
        Line($"o=pinhole {sessionId.ToString(CultureInfo.InvariantCulture)} 1 IN IP4 0.0.0.0");
        Line("s=-");
        Line("t=0 0");
        Line("a=ice-lite");
        Line("a=group:BUNDLE " + string.Join(' ', media.Select(m => m.Offered.Mid)));
        Line("a=msid-semantic: WMS pinhole");
        var firstSection = true;
        foreach (var m in media)
        {
            var d = m.Offered.Description;
            var pt = m.PayloadType >= 0 ? m.PayloadType : (d.PayloadType >= 0 ? d.PayloadType : 0);
            Line($"m={m.Offered.Kind} 9 {d.Protocol} {pt.ToString(CultureInfo.InvariantCulture)}");
            Line("c=IN IP4 0.0.0.0");
            Line($"a=mid:{m.Offered.Mid}");
            Line($"a=ice-ufrag:{ufrag}");
            Line($"a=ice-pwd:{pwd}");
            Line($"a=fingerprint:{fingerprint}");
            Line("a=setup:passive");
            Line("a=rtcp-mux");
            if (d.Attributes.Any(a => a.Key == "rtcp-rsize")) Line("a=rtcp-rsize");
            if (m.PayloadType < 0)
            {
                Line("a=inactive");
                var map = d.RtpMap(pt);
                if (map is not null) Line($"a=rtpmap:{pt.ToString(CultureInfo.InvariantCulture)} {map.EncodingName}/{map.ClockRate.ToString(CultureInfo.InvariantCulture)}" + (map.Channels > 1 ? "/" + map.Channels.ToString(CultureInfo.InvariantCulture) : ""));
            }
            else
            {
                Line("a=sendonly");
                var map = d.RtpMap(pt);
                var name = map?.EncodingName ?? (pt == 8 ? "PCMA" : "PCMU");
                var clock = map?.ClockRate ?? 8000;
                Line($"a=rtpmap:{pt.ToString(CultureInfo.InvariantCulture)} {name}/{clock.ToString(CultureInfo.InvariantCulture)}");
                if (m.Offered.Kind == "video")
                {
                    Line($"a=rtcp-fb:{pt.ToString(CultureInfo.InvariantCulture)} nack");
                    Line($"a=rtcp-fb:{pt.ToString(CultureInfo.InvariantCulture)} nack pli");
                    Line($"a=rtcp-fb:{pt.ToString(CultureInfo.InvariantCulture)} ccm fir");
                }
                if (m.Fmtp is not null) Line($"a=fmtp:{pt.ToString(CultureInfo.InvariantCulture)} {m.Fmtp}");
                var ssrc = m.Ssrc.ToString(CultureInfo.InvariantCulture);
                Line($"a=msid:pinhole {m.Offered.Kind}{m.Offered.Mid}");
                Line($"a=ssrc:{ssrc} cname:pinhole");
                Line($"a=ssrc:{ssrc} msid:pinhole {m.Offered.Kind}{m.Offered.Mid}");
            }
            if (firstSection)
            {
                // Candidates go once: everything is bundled on the first section's transport.
                var foundation = 1;
                foreach (var (address, port) in udp)
                    Line($"a=candidate:{foundation++} 1 udp {Priority(126, 65535 - foundation)} {address} {port.ToString(CultureInfo.InvariantCulture)} typ host");
                foreach (var (address, port) in tcp)
                    Line($"a=candidate:{foundation++} 1 tcp {Priority(90, 65535 - foundation)} {address} {port.ToString(CultureInfo.InvariantCulture)} typ host tcptype passive");
                Line("a=end-of-candidates");
                firstSection = false;
            }
        }
        return sb.ToString();
    }

    // RFC 8445 §5.1.2.1: (2^24)*type preference + (2^8)*local preference + (256 - component ID).
    private static string Priority(int typePreference, int localPreference) =>
        ((uint)((typePreference << 24) | (localPreference << 8) | 255)).ToString(CultureInfo.InvariantCulture);
}
