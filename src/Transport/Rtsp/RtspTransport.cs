using System.Globalization;
using System.Text;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtsp;

/// <summary>A pair of numbers written <c>a-b</c> in a Transport header (ports or channels).</summary>
/// <param name="First">The first (RTP) value.</param>
/// <param name="Second">The second (RTCP) value.</param>
public readonly record struct RtspRange(int First, int Second)
{
    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{First}-{Second}");
}

/// <summary>
/// One transport specification of the RTSP Transport header (RFC 2326 §12.39), e.g.
/// <c>RTP/AVP/TCP;unicast;interleaved=0-1</c> or <c>RTP/AVP;unicast;client_port=5000-5001</c>.
/// </summary>
public sealed record RtspTransport
{
    /// <summary>transport/profile/lower-transport, e.g. <c>RTP/AVP</c> or <c>RTP/AVP/TCP</c>.</summary>
    public string Protocol { get; init; } = "RTP/AVP";

    /// <summary>True for <c>unicast</c>, false for <c>multicast</c>.</summary>
    public bool Unicast { get; init; } = true;

    /// <summary><c>interleaved=</c>: the RTP and RTCP channel ids on the RTSP connection.</summary>
    public RtspRange? Interleaved { get; init; }

    /// <summary><c>client_port=</c>: the client's RTP and RTCP UDP ports.</summary>
    public RtspRange? ClientPort { get; init; }

    /// <summary><c>server_port=</c>: the server's RTP and RTCP UDP ports.</summary>
    public RtspRange? ServerPort { get; init; }

    /// <summary><c>ssrc=</c>: the synchronization source the server will use (hex).</summary>
    public uint? Ssrc { get; init; }

    /// <summary><c>destination=</c>, when given.</summary>
    public string? Destination { get; init; }

    /// <summary><c>source=</c>, when given.</summary>
    public string? Source { get; init; }

    /// <summary><c>mode=</c> without quotes, e.g. <c>PLAY</c>, when given.</summary>
    public string? Mode { get; init; }

    /// <summary>True when the lower transport is TCP (interleaved on the RTSP connection).</summary>
    public bool IsTcp => Protocol.EndsWith("/TCP", StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses a whole Transport header: one or more specifications separated by commas.</summary>
    public static IReadOnlyList<RtspTransport> ParseList(string header)
    {
        ArgumentNullException.ThrowIfNull(header);
        var list = new List<RtspTransport>();
        foreach (var spec in header.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            list.Add(Parse(spec));
        if (list.Count == 0) throw new RtspProtocolException("empty RTSP Transport header");
        return list;
    }

    /// <summary>Parses one transport specification.</summary>
    public static RtspTransport Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var parts = spec.Split(';', StringSplitOptions.TrimEntries);
        if (parts[0].Length == 0 || !parts[0].StartsWith("RTP/", StringComparison.OrdinalIgnoreCase))
            throw new RtspProtocolException($"RTSP Transport '{Truncate(parts[0])}' is not RTP");
        var t = new RtspTransport { Protocol = parts[0] };
        foreach (var p in parts.Skip(1))
        {
            if (p.Length == 0) continue;
            var eq = p.IndexOf('=', StringComparison.Ordinal);
            var key = (eq < 0 ? p : p[..eq]).ToLowerInvariant();
            var value = eq < 0 ? "" : p[(eq + 1)..].Trim('"');
            t = key switch
            {
                "unicast" => t with { Unicast = true },
                "multicast" => t with { Unicast = false },
                "interleaved" => t with { Interleaved = ParseRange(value, 255, key) },
                "client_port" => t with { ClientPort = ParseRange(value, 65535, key) },
                "server_port" => t with { ServerPort = ParseRange(value, 65535, key) },
                "ssrc" => t with { Ssrc = ParseSsrc(value) },
                "destination" => t with { Destination = value },
                "source" => t with { Source = value },
                "mode" => t with { Mode = value },
                _ => t, // ttl, layers, append, port…: not used by Pinhole (§12.39 says ignore unknown)
            };
        }
        return t;
    }

    /// <summary>Formats this specification for a Transport header.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(Protocol);
        sb.Append(Unicast ? ";unicast" : ";multicast");
        if (Destination is not null) sb.Append(";destination=").Append(Destination);
        if (Source is not null) sb.Append(";source=").Append(Source);
        if (Interleaved is { } i) sb.Append(";interleaved=").Append(i.ToString());
        if (ClientPort is { } c) sb.Append(";client_port=").Append(c.ToString());
        if (ServerPort is { } s) sb.Append(";server_port=").Append(s.ToString());
        if (Ssrc is { } ssrc) sb.Append(";ssrc=").Append(ssrc.ToString("X8", CultureInfo.InvariantCulture));
        if (Mode is not null) sb.Append(";mode=\"").Append(Mode).Append('"');
        return sb.ToString();
    }

    private static RtspRange ParseRange(string value, int max, string key)
    {
        // "a-b" or a single "a" meaning a and a+1 (§12.39 interleaved/port).
        var dash = value.IndexOf('-', StringComparison.Ordinal);
        var firstText = dash < 0 ? value : value[..dash];
        if (!int.TryParse(firstText, NumberStyles.None, CultureInfo.InvariantCulture, out var a) || a > max)
            throw new RtspProtocolException($"RTSP Transport {key} '{Truncate(value)}' is not a number range");
        var b = a + 1;
        if (dash >= 0 && (!int.TryParse(value[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out b) || b > max))
            throw new RtspProtocolException($"RTSP Transport {key} '{Truncate(value)}' is not a number range");
        return new RtspRange(a, Math.Min(b, max));
    }

    private static uint ParseSsrc(string value)
    {
        // RFC 2326 says hex; some servers write decimal with more than 8 digits — accept hex up to 8 digits.
        if (value.Length is > 0 and <= 8 && uint.TryParse(value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)) return v;
        if (uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out v)) return v;
        throw new RtspProtocolException($"RTSP Transport ssrc '{Truncate(value)}' is not a number");
    }

    internal static string Truncate(string s) => MediaFormatException.Quote(s);
}

/// <summary>The RTSP Session header (RFC 2326 §12.37): <c>id[;timeout=seconds]</c>.</summary>
/// <param name="Id">The session identifier.</param>
/// <param name="TimeoutSeconds">Seconds of inactivity after which the server may drop the session (default 60).</param>
public sealed record RtspSession(string Id, int TimeoutSeconds = RtspSession.DefaultTimeoutSeconds)
{
    /// <summary>The timeout when the header gives none (§12.37).</summary>
    public const int DefaultTimeoutSeconds = 60;

    /// <summary>Parses a Session header value.</summary>
    public static RtspSession Parse(string header)
    {
        ArgumentNullException.ThrowIfNull(header);
        var parts = header.Split(';', StringSplitOptions.TrimEntries);
        var id = parts[0];
        if (id.Length == 0 || id.Any(c => c <= ' ' || c >= 0x7f))
            throw new RtspProtocolException("RTSP Session header without a valid session id");
        var timeout = DefaultTimeoutSeconds;
        foreach (var p in parts.Skip(1))
        {
            if (!p.StartsWith("timeout=", StringComparison.OrdinalIgnoreCase)) continue;
            if (!int.TryParse(p.AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out timeout) || timeout == 0)
                throw new RtspProtocolException("RTSP Session timeout is not a positive number");
        }
        return new RtspSession(id, timeout);
    }

    /// <summary>Formats the header value, with the timeout.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Id};timeout={TimeoutSeconds}");
}
