using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace Pinhole.Transport.Rtsp;

/// <summary>Size limits for <see cref="RtspParser"/>, checked before anything is buffered.</summary>
public sealed record RtspParserLimits
{
    /// <summary>The defaults: 16 KiB of start line and headers, 64 header lines, 256 KiB body.</summary>
    public static RtspParserLimits Default { get; } = new();

    /// <summary>Most bytes the start line plus header block may take, line ends included.</summary>
    public int MaxHeaderBytes { get; init; } = 16 * 1024;

    /// <summary>Most header lines in one message.</summary>
    public int MaxHeaderCount { get; init; } = 64;

    /// <summary>Most bytes a body (Content-Length) may have.</summary>
    public int MaxBodyBytes { get; init; } = 256 * 1024;
}

/// <summary>
/// Parses the RTSP 1.0 byte stream of one TCP connection (RFC 2326): text messages
/// (§6 requests, §7 responses) and, between them, interleaved binary frames (§10.12).
/// Pure: no I/O. Every <c>TryParse</c> returns false and consumes nothing when more bytes are
/// needed, and throws <see cref="RtspProtocolException"/> for malformed input.
/// </summary>
public static class RtspParser
{
    /// <summary>The byte that starts an interleaved frame (RFC 2326 §10.12).</summary>
    public const byte InterleavedMarker = (byte)'$';

    /// <summary>
    /// Parses whatever comes next on the stream: an interleaved frame when the next byte is
    /// <c>$</c>, a message otherwise. On true exactly one of <paramref name="message"/> and
    /// <paramref name="frame"/> is set (the frame when <paramref name="message"/> is null).
    /// </summary>
    public static bool TryParse(ref SequenceReader<byte> reader, out RtspMessage? message, out InterleavedFrame frame, RtspParserLimits? limits = null)
    {
        message = null;
        frame = default;
        if (!reader.TryPeek(out var first)) return false;
        if (first == InterleavedMarker) return InterleavedFrame.TryParse(ref reader, out frame);
        return TryParseMessage(ref reader, out message, limits);
    }

    /// <summary>Parses one RTSP request or response, body included.</summary>
    internal static bool TryParseMessage(ref SequenceReader<byte> reader, [NotNullWhen(true)] out RtspMessage? message, RtspParserLimits? limits = null)
    {
        limits ??= RtspParserLimits.Default;
        message = null;
        var r = reader; // work on a copy; commit only a whole message
        var headerStart = r.Consumed;

        // RFC 2326 §4 inherits HTTP/1.1's leniency: ignore empty lines before the start line.
        while (r.TryPeek(out var b) && (b == (byte)'\r' || b == (byte)'\n'))
        {
            r.Advance(1);
            if (r.Consumed - headerStart > limits.MaxHeaderBytes) throw new RtspProtocolException("too many empty lines before an RTSP start line");
        }

        string? startLine = null;
        var headers = new List<KeyValuePair<string, string>>();
        while (true)
        {
            if (!r.TryReadTo(out ReadOnlySequence<byte> lineBytes, (byte)'\n'))
            {
                if (r.Remaining + (r.Consumed - headerStart) > limits.MaxHeaderBytes)
                    throw new RtspProtocolException($"RTSP header block longer than {limits.MaxHeaderBytes} bytes");
                return false;
            }
            if (r.Consumed - headerStart > limits.MaxHeaderBytes)
                throw new RtspProtocolException($"RTSP header block longer than {limits.MaxHeaderBytes} bytes");
            var line = DecodeLine(lineBytes);
            if (startLine is null)
            {
                if (line.Length == 0) continue;
                startLine = line;
                continue;
            }
            if (line.Length == 0) break;
            if (line[0] is ' ' or '\t')
            {
                // Obsolete line folding (HTTP/1.1 §2.2): continue the previous value.
                if (headers.Count == 0) throw new RtspProtocolException("RTSP header continuation line before any header");
                var last = headers[^1];
                headers[^1] = new(last.Key, last.Value + " " + line.Trim());
                continue;
            }
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) throw new RtspProtocolException("RTSP header line without a name and colon");
            var name = line[..colon].Trim();
            if (name.Length == 0 || !IsToken(name)) throw new RtspProtocolException("RTSP header name is not a token");
            if (headers.Count >= limits.MaxHeaderCount) throw new RtspProtocolException($"more than {limits.MaxHeaderCount} RTSP header lines");
            headers.Add(new(name, line[(colon + 1)..].Trim()));
        }

        RtspMessage msg = ParseStartLine(startLine);
        foreach (var h in headers) msg.Headers.Add(h.Key, h.Value);

        var lengthText = msg.Headers["Content-Length"];
        var length = 0;
        if (lengthText is not null)
        {
            if (!int.TryParse(lengthText, NumberStyles.None, CultureInfo.InvariantCulture, out length))
            {
                // A number too big for int is also too big for the limit.
                if (lengthText.Length > 0 && lengthText.All(char.IsAsciiDigit))
                    throw new RtspProtocolException($"RTSP body of {lengthText} bytes exceeds the limit of {limits.MaxBodyBytes}");
                throw new RtspProtocolException("RTSP Content-Length is not a non-negative number");
            }
            if (length > limits.MaxBodyBytes)
                throw new RtspProtocolException($"RTSP body of {length} bytes exceeds the limit of {limits.MaxBodyBytes}");
        }
        if (r.Remaining < length) return false;
        if (length > 0)
        {
            var body = new byte[length];
            r.UnreadSequence.Slice(0, length).CopyTo(body);
            r.Advance(length);
            msg.Body = body;
        }
        reader = r;
        message = msg;
        return true;
    }

    private static RtspMessage ParseStartLine(string line)
    {
        if (line.StartsWith("RTSP/", StringComparison.Ordinal))
        {
            // Status-Line = RTSP-Version SP Status-Code SP Reason-Phrase (§7.1)
            var parts = line.Split(' ', 3);
            CheckVersion(parts[0]);
            if (parts.Length < 2 || parts[1].Length != 3 || !parts[1].All(char.IsAsciiDigit))
                throw new RtspProtocolException("RTSP status line without a three-digit status code");
            var code = int.Parse(parts[1], CultureInfo.InvariantCulture);
            if (code < 100) throw new RtspProtocolException("RTSP status code below 100");
            return new RtspResponse(code, parts.Length > 2 ? parts[2] : "");
        }
        // Request-Line = Method SP Request-URI SP RTSP-Version (§6.1)
        var p = line.Split(' ');
        if (p.Length != 3 || p[0].Length == 0 || p[1].Length == 0)
            throw new RtspProtocolException("RTSP request line is not 'METHOD URI RTSP/1.0'");
        if (!IsToken(p[0])) throw new RtspProtocolException("RTSP method is not a token");
        CheckVersion(p[2]);
        return new RtspRequest(p[0], p[1]);
    }

    private static void CheckVersion(string version)
    {
        if (version != RtspMessage.Version)
            throw new RtspProtocolException(version.StartsWith("RTSP/", StringComparison.Ordinal)
                ? "unsupported RTSP version (only RTSP/1.0)" : "not an RTSP message");
    }

    private static string DecodeLine(ReadOnlySequence<byte> bytes)
    {
        Span<byte> buffer = bytes.Length <= 512 ? stackalloc byte[(int)bytes.Length] : new byte[bytes.Length];
        bytes.CopyTo(buffer);
        if (buffer.Length > 0 && buffer[^1] == (byte)'\r') buffer = buffer[..^1];
        foreach (var b in buffer)
            if (b < 0x20 && b != (byte)'\t' || b == 0x7f)
                throw new RtspProtocolException("control character in an RTSP header line");
        try
        {
            return Utf8Strict.GetString(buffer);
        }
        catch (DecoderFallbackException e)
        {
            throw new RtspProtocolException("RTSP header line is not UTF-8", e);
        }
    }

    private static readonly UTF8Encoding Utf8Strict = new(false, true);

    // token = 1*<any CHAR except CTLs or tspecials> (RFC 2326 §15.1)
    private static bool IsToken(string s)
    {
        foreach (var c in s)
            if (c <= ' ' || c >= 0x7f || "()<>@,;:\\\"/[]?={}".Contains(c, StringComparison.Ordinal)) return false;
        return true;
    }
}

/// <summary>
/// One interleaved binary frame on the RTSP TCP connection (RFC 2326 §10.12):
/// <c>$</c>, a one-byte channel id, a 16-bit big-endian length, then that many bytes (an RTP or
/// RTCP packet).
/// </summary>
/// <param name="Channel">The channel id chosen by the Transport header's <c>interleaved=</c>.</param>
/// <param name="Payload">The frame's bytes: a copy owned by the frame from <see cref="TryParse"/>; lent
/// from the read buffer, valid during the call only, where a connection hands frames to a handler.</param>
public readonly record struct InterleavedFrame(byte Channel, ReadOnlyMemory<byte> Payload)
{
    /// <summary>Bytes before the payload: <c>$</c>, channel, length.</summary>
    public const int HeaderLength = 4;

    /// <summary>Parses one frame; false (nothing consumed) when it is not all there yet.</summary>
    public static bool TryParse(ref SequenceReader<byte> reader, out InterleavedFrame frame)
    {
        frame = default;
        Span<byte> header = stackalloc byte[HeaderLength];
        if (!reader.TryCopyTo(header) || !TryReadHeader(header, out var channel, out var length)) return false;
        if (reader.Remaining < HeaderLength + length) return false;
        var payload = new byte[length];
        reader.Advance(HeaderLength);
        reader.TryCopyTo(payload);
        reader.Advance(length);
        frame = new InterleavedFrame(channel, payload);
        return true;
    }

    /// <summary>
    /// Reads the 4-byte header at the start of <paramref name="bytes"/>; false when fewer than 4 bytes
    /// are there. Whether the payload is all there too is the caller's to check.
    /// </summary>
    /// <exception cref="RtspProtocolException">The bytes do not start with <c>$</c>.</exception>
    internal static bool TryReadHeader(ReadOnlySpan<byte> bytes, out byte channel, out int length)
    {
        (channel, length) = (0, 0);
        if (bytes.Length < HeaderLength) return false;
        if (bytes[0] != RtspParser.InterleavedMarker) throw new RtspProtocolException("interleaved frame does not start with '$'");
        (channel, length) = (bytes[1], (bytes[2] << 8) | bytes[3]);
        return true;
    }

    /// <summary>Writes the frame to <paramref name="writer"/>.</summary>
    public static void Write(IBufferWriter<byte> writer, byte channel, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > ushort.MaxValue) throw new ArgumentException("an interleaved frame carries at most 65535 bytes", nameof(payload));
        var span = writer.GetSpan(HeaderLength + payload.Length);
        span[0] = RtspParser.InterleavedMarker;
        span[1] = channel;
        span[2] = (byte)(payload.Length >> 8);
        span[3] = (byte)payload.Length;
        payload.CopyTo(span[HeaderLength..]);
        writer.Advance(HeaderLength + payload.Length);
    }
}
