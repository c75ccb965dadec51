using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Pinhole.Transport.WebSockets;

/// <summary>WebSocket frame opcodes (RFC 6455 §5.2).</summary>
internal enum WebSocketOpcode : byte
{
    /// <summary>A later frame of a fragmented message.</summary>
    Continuation = 0x0,

    /// <summary>UTF-8 text.</summary>
    Text = 0x1,

    /// <summary>Binary data.</summary>
    Binary = 0x2,

    /// <summary>Close (§5.5.1).</summary>
    Close = 0x8,

    /// <summary>Ping (§5.5.2).</summary>
    Ping = 0x9,

    /// <summary>Pong (§5.5.3).</summary>
    Pong = 0xA,
}

/// <summary>A parsed frame header.</summary>
/// <param name="Fin">The final fragment of a message.</param>
/// <param name="Opcode">The frame's opcode.</param>
/// <param name="PayloadLength">Payload bytes after the header.</param>
/// <param name="HeaderLength">Bytes the header took (2 to 14).</param>
/// <param name="Masked">The payload is masked (a client's frame).</param>
/// <param name="MaskKey">The masking key as it appears on the wire, read big-endian.</param>
internal readonly record struct WebSocketFrameHeader(bool Fin, WebSocketOpcode Opcode, long PayloadLength, int HeaderLength, bool Masked, uint MaskKey)
{
    /// <summary>Close, ping and pong: at most 125 bytes of payload and never fragmented (§5.5).</summary>
    public bool IsControl => ((byte)Opcode & 0x8) != 0;
}

/// <summary>
/// RFC 6455 framing without I/O: frame headers written and parsed over spans, payload masking, and
/// the handshake's accept key. <see cref="TryReadHeader"/> follows the parser rule of this codebase:
/// false means "need more bytes", malformed input throws <see cref="WebSocketFramingException"/>.
/// </summary>
internal static class WebSocketFraming
{
    /// <summary>Longest header a client writes: 2 bytes, a 64-bit length, a 4-byte mask key.</summary>
    public const int MaxClientHeaderLength = 14;

    /// <summary>Largest payload of a control frame (§5.5).</summary>
    public const int MaxControlPayload = 125;

    /// <summary>The GUID appended to the client's key to prove the server speaks WebSocket (§1.3).</summary>
    public const string AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    /// <summary>The header length of a masked (client) frame carrying <paramref name="payloadLength"/> bytes.</summary>
    public static int ClientHeaderLength(long payloadLength) => LengthFieldBytes(payloadLength) + 4;

    private static int LengthFieldBytes(long payloadLength) => payloadLength switch
    {
        < 0 => throw new ArgumentOutOfRangeException(nameof(payloadLength)),
        <= 125 => 2,
        <= ushort.MaxValue => 4,
        _ => 10,
    };

    /// <summary>
    /// Writes an unfragmented, masked frame header (FIN set) with <paramref name="maskKey"/> and returns
    /// its length. The payload that follows must be masked with the same key (<see cref="Mask"/>).
    /// </summary>
    public static int WriteClientHeader(Span<byte> destination, WebSocketOpcode opcode, long payloadLength, uint maskKey)
    {
        var length = ClientHeaderLength(payloadLength);
        if (destination.Length < length) throw new ArgumentException("destination too small for the frame header", nameof(destination));
        destination[0] = (byte)(0x80 | (byte)opcode);
        int at;
        if (payloadLength <= 125)
        {
            destination[1] = (byte)(0x80 | payloadLength);
            at = 2;
        }
        else if (payloadLength <= ushort.MaxValue)
        {
            destination[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)payloadLength);
            at = 4;
        }
        else
        {
            destination[1] = 0x80 | 127;
            BinaryPrimitives.WriteUInt64BigEndian(destination[2..], (ulong)payloadLength);
            at = 10;
        }
        BinaryPrimitives.WriteUInt32BigEndian(destination[at..], maskKey);
        return length;
    }

    /// <summary>
    /// Parses a frame header at the start of <paramref name="source"/>. Returns false when more bytes are
    /// needed. Throws for what no peer may send: reserved bits without an extension, unknown opcodes,
    /// fragmented or oversized control frames, non-minimal or 64-bit lengths with the top bit set.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> source, out WebSocketFrameHeader header)
    {
        header = default;
        if (source.Length < 2) return false;
        var b0 = source[0];
        var b1 = source[1];
        if ((b0 & 0x70) != 0) throw new WebSocketFramingException("reserved bits set without a negotiated extension (RFC 6455 §5.2)");
        var opcode = (WebSocketOpcode)(b0 & 0x0F);
        if (opcode is not (WebSocketOpcode.Continuation or WebSocketOpcode.Text or WebSocketOpcode.Binary or WebSocketOpcode.Close or WebSocketOpcode.Ping or WebSocketOpcode.Pong))
            throw new WebSocketFramingException($"unknown opcode 0x{(byte)opcode:X} (RFC 6455 §5.2)");
        var fin = (b0 & 0x80) != 0;
        var masked = (b1 & 0x80) != 0;
        long length = b1 & 0x7F;
        var at = 2;
        if (length == 126)
        {
            if (source.Length < 4) return false;
            length = BinaryPrimitives.ReadUInt16BigEndian(source[2..]);
            if (length <= 125) throw new WebSocketFramingException("a 16-bit length for a payload that fits in 7 bits (RFC 6455 §5.2)");
            at = 4;
        }
        else if (length == 127)
        {
            if (source.Length < 10) return false;
            var wide = BinaryPrimitives.ReadUInt64BigEndian(source[2..]);
            if (wide > long.MaxValue) throw new WebSocketFramingException("64-bit payload length with the most significant bit set (RFC 6455 §5.2)");
            if (wide <= ushort.MaxValue) throw new WebSocketFramingException("a 64-bit length for a payload that fits in 16 bits (RFC 6455 §5.2)");
            length = (long)wide;
            at = 10;
        }
        uint key = 0;
        if (masked)
        {
            if (source.Length < at + 4) return false;
            key = BinaryPrimitives.ReadUInt32BigEndian(source[at..]);
            at += 4;
        }
        header = new WebSocketFrameHeader(fin, opcode, length, at, masked, key);
        if (header.IsControl && (!fin || length > MaxControlPayload))
            throw new WebSocketFramingException($"{opcode} frame {(fin ? $"of {length} bytes (at most {MaxControlPayload})" : "fragmented")} (RFC 6455 §5.5)");
        return true;
    }

    /// <summary>
    /// XORs <paramref name="payload"/> in place with <paramref name="maskKey"/> (§5.3), where the span starts
    /// <paramref name="offset"/> bytes into the frame's payload. Masking twice unmasks.
    /// </summary>
    public static void Mask(Span<byte> payload, uint maskKey, long offset = 0)
    {
        if (payload.IsEmpty) return;
        // The key as it lies on the wire, rotated so that payload[0] meets key byte (offset % 4).
        Span<byte> key = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(key, maskKey);
        var shift = (int)(offset & 3);
        Span<byte> pattern = stackalloc byte[8];
        for (var i = 0; i < 8; i++) pattern[i] = key[(i + shift) & 3];
        var wide = MemoryMarshal.Read<ulong>(pattern);
        var words = MemoryMarshal.Cast<byte, ulong>(payload[..(payload.Length & ~7)]);
        for (var w = 0; w < words.Length; w++) words[w] ^= wide;
        for (var i = words.Length * 8; i < payload.Length; i++) payload[i] ^= pattern[i & 7];
    }

    /// <summary>The <c>Sec-WebSocket-Accept</c> value a server must answer to <paramref name="key"/> (§4.2.2).</summary>
    public static string ComputeAccept(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + AcceptGuid)));
    }
}

/// <summary>Bytes that are not a valid WebSocket frame.</summary>
public sealed class WebSocketFramingException : IOException
{
    /// <summary>Creates the exception with the reason.</summary>
    public WebSocketFramingException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public WebSocketFramingException() { }

    /// <summary>Creates the exception with the reason and cause.</summary>
    public WebSocketFramingException(string message, Exception inner) : base(message, inner) { }
}
