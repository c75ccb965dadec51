using System.Buffers.Text;

namespace Pinhole.Transport.Uplink;

/// <summary>
/// HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), the framing of the uplink's HTTP fallback: each uplink
/// message leaves as one chunk, and the receiver reads the chunks back as one byte stream that
/// <see cref="UplinkCodec"/> splits into messages (they are self-delimiting). Pure: no sockets.
/// </summary>
internal static class UplinkHttpFraming
{
    /// <summary>Longest chunk-size line accepted, extensions included (RFC 9112 §7.1.1 lets a receiver limit them).</summary>
    public const int MaxChunkLineBytes = 256;

    /// <summary>Longest trailer line accepted after the last chunk (the uplink sends none; a proxy may add some).</summary>
    public const int MaxTrailerLineBytes = MaxChunkLineBytes * 16;

    /// <summary>The last chunk and the empty trailer section that end a chunked body.</summary>
    public static ReadOnlySpan<byte> LastChunk => "0\r\n\r\n"u8;

    /// <summary>Bytes <see cref="WriteChunkHeader"/> writes for a chunk of <paramref name="length"/> bytes.</summary>
    public static int ChunkHeaderLength(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        var digits = 1;
        for (var v = (uint)length >> 4; v != 0; v >>= 4) digits++;
        return digits + 2;
    }

    /// <summary>Writes <c>HEX\r\n</c> for a chunk of <paramref name="length"/> (&gt; 0) bytes; returns the bytes written.</summary>
    public static int WriteChunkHeader(Span<byte> destination, int length)
    {
        var size = ChunkHeaderLength(length);
        // Checked first: the digits alone may fit where the CRLF after them does not.
        if (destination.Length < size) throw new ArgumentException("destination too small", nameof(destination));
        if (!Utf8Formatter.TryFormat((uint)length, destination, out var written, new System.Buffers.StandardFormat('x')) || written != size - 2)
            throw new ArgumentException("destination too small", nameof(destination));
        destination[written] = (byte)'\r';
        destination[written + 1] = (byte)'\n';
        return size;
    }

    /// <summary>The two bytes that follow every chunk's data.</summary>
    public static ReadOnlySpan<byte> ChunkEnd => "\r\n"u8;

    /// <summary>
    /// Reads a chunk-size line (<c>HEX[;extensions]\r\n</c>). False means "need more bytes" (nothing consumed).
    /// A size of 0 is the last chunk; the caller then reads the trailer section with <see cref="TryReadTrailerLine"/>.
    /// </summary>
    /// <exception cref="UplinkProtocolException">Not a chunk-size line, a size above <see cref="int.MaxValue"/>, or a line too long.</exception>
    public static bool TryReadChunkHeader(ReadOnlySpan<byte> buffer, out int size, out int consumed)
    {
        size = 0;
        consumed = 0;
        var end = buffer.IndexOf("\r\n"u8);
        if (end < 0)
        {
            // A line of MaxChunkLineBytes may have its CR here and its LF still on the way.
            if (buffer.Length > MaxChunkLineBytes + 1) throw new UplinkProtocolException("chunk-size line too long");
            return false;
        }
        if (end > MaxChunkLineBytes) throw new UplinkProtocolException("chunk-size line too long");
        var line = buffer[..end];
        var semicolon = line.IndexOf((byte)';');
        // BWS (spaces and tabs, in any order) may precede the extensions' ';' (RFC 9112 §7.1.1).
        var hex = (semicolon < 0 ? line : line[..semicolon]).TrimEnd(" \t"u8);
        if (hex.IsEmpty || hex.Length > 8) throw new UplinkProtocolException("malformed chunk size");
        long value = 0;
        foreach (var b in hex)
        {
            var digit = b switch
            {
                >= (byte)'0' and <= (byte)'9' => b - '0',
                >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
                _ => throw new UplinkProtocolException("malformed chunk size"),
            };
            value = value * 16 + digit;
        }
        if (value > int.MaxValue) throw new UplinkProtocolException("chunk larger than 2 GiB");
        size = (int)value;
        consumed = end + 2;
        return true;
    }

    /// <summary>
    /// Reads one line of the trailer section after the last chunk. False means "need more bytes". <paramref name="last"/>
    /// is true for the empty line that ends the body.
    /// </summary>
    /// <exception cref="UplinkProtocolException">A trailer line too long.</exception>
    public static bool TryReadTrailerLine(ReadOnlySpan<byte> buffer, out bool last, out int consumed)
    {
        last = false;
        consumed = 0;
        var end = buffer.IndexOf("\r\n"u8);
        if (end < 0)
        {
            // As for chunk-size lines: the longest allowed line may have its CR here and its LF still on the way.
            if (buffer.Length > MaxTrailerLineBytes + 1) throw new UplinkProtocolException("trailer line too long");
            return false;
        }
        // The same limit whether the line arrived whole or in pieces.
        if (end > MaxTrailerLineBytes) throw new UplinkProtocolException("trailer line too long");
        last = end == 0;
        consumed = end + 2;
        return true;
    }
}
