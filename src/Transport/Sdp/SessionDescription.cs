using System.Globalization;
using System.Text;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Sdp;

/// <summary>An <c>a=rtpmap</c> value (RFC 4566 §6): encoding name, clock rate, channels.</summary>
/// <param name="PayloadType">The RTP payload type it describes.</param>
/// <param name="EncodingName">E.g. <c>H264</c>, <c>mpeg4-generic</c>, <c>PCMA</c>.</param>
/// <param name="ClockRate">RTP clock rate in Hz.</param>
/// <param name="Channels">Audio channels (1 when not given).</param>
public sealed record SdpRtpMap(int PayloadType, string EncodingName, int ClockRate, int Channels);

/// <summary>One media section (RFC 4566 §5.14 <c>m=</c> and the lines after it).</summary>
public sealed class MediaDescription
{
    /// <summary>Creates a media section.</summary>
    public MediaDescription(string media, int port, string protocol, IReadOnlyList<string> formats)
    {
        Media = media;
        Port = port;
        Protocol = protocol;
        Formats = formats;
    }

    /// <summary><c>video</c>, <c>audio</c>, <c>application</c>, …</summary>
    public string Media { get; }

    /// <summary>The port from the m= line (0 in RTSP DESCRIBE answers usually).</summary>
    public int Port { get; }

    /// <summary>E.g. <c>RTP/AVP</c>.</summary>
    public string Protocol { get; }

    /// <summary>The format list; for RTP these are payload type numbers.</summary>
    public IReadOnlyList<string> Formats { get; }

    /// <summary>Attributes of this section in order (<c>a=name:value</c>; value null for flags).</summary>
    public List<KeyValuePair<string, string?>> Attributes { get; } = [];

    /// <summary>The first attribute called <paramref name="name"/>, or null.</summary>
    public string? Attribute(string name) => Attributes.FirstOrDefault(a => a.Key == name).Value;

    /// <summary>The <c>a=control</c> value (RFC 2326 §C.1.1), or null.</summary>
    public string? Control => Attribute("control");

    /// <summary>The first payload type of the m= line, or -1 when it is not a number.</summary>
    public int PayloadType => Formats.Count > 0 && int.TryParse(Formats[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pt) && pt <= 127 ? pt : -1;

    /// <summary>The rtpmap for <paramref name="payloadType"/>; for static types (RFC 3551 §6) without one, the table value.</summary>
    public SdpRtpMap? RtpMap(int payloadType)
    {
        foreach (var a in Attributes)
        {
            if (a.Key != "rtpmap" || a.Value is null) continue;
            var sp = a.Value.IndexOf(' ', StringComparison.Ordinal);
            if (sp <= 0 || !int.TryParse(a.Value.AsSpan(0, sp), NumberStyles.None, CultureInfo.InvariantCulture, out var pt) || pt != payloadType) continue;
            var parts = a.Value[(sp + 1)..].Trim().Split('/');
            if (parts.Length < 2 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var rate) || rate <= 0)
                throw new MediaFormatException($"SDP rtpmap '{MediaFormatException.Quote(a.Value)}' has no clock rate");
            var channels = 1;
            if (parts.Length > 2 && (!int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out channels) || channels is < 1 or > 8))
                throw new MediaFormatException($"SDP rtpmap '{MediaFormatException.Quote(a.Value)}' has a bad channel count");
            return new SdpRtpMap(pt, parts[0], rate, channels);
        }
        return payloadType switch
        {
            0 => new SdpRtpMap(0, "PCMU", 8000, 1),
            8 => new SdpRtpMap(8, "PCMA", 8000, 1),
            _ => null,
        };
    }

    /// <summary>The <c>a=fmtp</c> parameters for <paramref name="payloadType"/> (RFC 4566 §6), names lower-cased.</summary>
    public IReadOnlyDictionary<string, string> Fmtp(int payloadType)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var a in Attributes)
        {
            if (a.Key != "fmtp" || a.Value is null) continue;
            var sp = a.Value.IndexOf(' ', StringComparison.Ordinal);
            if (sp <= 0 || !int.TryParse(a.Value.AsSpan(0, sp), NumberStyles.None, CultureInfo.InvariantCulture, out var pt) || pt != payloadType) continue;
            foreach (var p in a.Value[(sp + 1)..].Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var eq = p.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0) continue;
                result[p[..eq].Trim()] = p[(eq + 1)..].Trim();
            }
        }
        return result;
    }
}

/// <summary>
/// A session description (RFC 4566): the DESCRIBE answer of an RTSP server. Parsing is lenient in
/// what it ignores (unknown lines) and strict about what Pinhole uses (m=, rtpmap, fmtp, control).
/// </summary>
public sealed class SessionDescription
{
    /// <summary>Longest SDP accepted, in characters.</summary>
    public const int MaxLength = 64 * 1024;

    /// <summary>Most media sections accepted.</summary>
    public const int MaxMedia = 16;

    /// <summary>The <c>s=</c> line.</summary>
    public string SessionName { get; set; } = "-";

    /// <summary>The <c>o=</c> line, when present.</summary>
    public string? Origin { get; set; }

    /// <summary>Session-level attributes in order.</summary>
    public List<KeyValuePair<string, string?>> Attributes { get; } = [];

    /// <summary>The media sections in order.</summary>
    public List<MediaDescription> Media { get; } = [];

    /// <summary>The session-level <c>a=control</c>, or null.</summary>
    public string? Control => Attributes.FirstOrDefault(a => a.Key == "control").Value;

    /// <summary>Parses SDP text; throws <see cref="MediaFormatException"/> when it is not SDP.</summary>
    public static SessionDescription Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > MaxLength) throw new MediaFormatException($"SDP longer than {MaxLength} characters");
        var sdp = new SessionDescription();
        MediaDescription? current = null;
        var sawVersion = false;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            // RFC 4566 §5: <type>=<value>, type one letter.
            if (line.Length < 2 || line[1] != '=') throw new MediaFormatException($"SDP line '{MediaFormatException.Quote(line)}' is not 'x=value'");
            var type = line[0];
            var value = line[2..];
            if (!sawVersion)
            {
                if (type != 'v' || value.Trim() != "0") throw new MediaFormatException("SDP does not start with v=0");
                sawVersion = true;
                continue;
            }
            switch (type)
            {
                case 'o': sdp.Origin = value; break;
                case 's': sdp.SessionName = value; break;
                case 'm':
                    {
                        // m=<media> <port>[/<number of ports>] <proto> <fmt> ... (§5.14)
                        var parts = value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                        if (parts.Length < 4) throw new MediaFormatException($"SDP m= line '{MediaFormatException.Quote(value)}' has fewer than four fields");
                        var portText = parts[1].Split('/')[0];
                        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
                            throw new MediaFormatException($"SDP m= line has a bad port '{MediaFormatException.Quote(parts[1])}'");
                        if (sdp.Media.Count >= MaxMedia) throw new MediaFormatException($"SDP has more than {MaxMedia} media sections");
                        current = new MediaDescription(parts[0], port, parts[2], parts[3..]);
                        sdp.Media.Add(current);
                        break;
                    }
                case 'a':
                    {
                        var colon = value.IndexOf(':', StringComparison.Ordinal);
                        var attr = colon < 0 ? new KeyValuePair<string, string?>(value, null) : new(value[..colon], value[(colon + 1)..].Trim());
                        (current?.Attributes ?? sdp.Attributes).Add(attr);
                        break;
                    }
                default: break; // c=, t=, b=, i=, … are not needed to receive RTP over RTSP.
            }
        }
        if (!sawVersion) throw new MediaFormatException("empty SDP");
        return sdp;
    }

    /// <summary>Formats the description as SDP text with CRLF line ends.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.Append("v=0\r\n");
        sb.Append("o=").Append(Origin ?? "- 0 0 IN IP4 127.0.0.1").Append("\r\n");
        sb.Append("s=").Append(SessionName).Append("\r\n");
        sb.Append("c=IN IP4 0.0.0.0\r\n");
        sb.Append("t=0 0\r\n");
        AppendAttributes(sb, Attributes);
        foreach (var m in Media)
        {
            sb.Append("m=").Append(m.Media).Append(' ').Append(m.Port.ToString(CultureInfo.InvariantCulture)).Append(' ')
              .Append(m.Protocol).Append(' ').Append(string.Join(' ', m.Formats)).Append("\r\n");
            AppendAttributes(sb, m.Attributes);
        }
        return sb.ToString();
    }

    private static void AppendAttributes(StringBuilder sb, List<KeyValuePair<string, string?>> attributes)
    {
        foreach (var a in attributes)
        {
            sb.Append("a=").Append(a.Key);
            if (a.Value is not null) sb.Append(':').Append(a.Value);
            sb.Append("\r\n");
        }
    }
}
