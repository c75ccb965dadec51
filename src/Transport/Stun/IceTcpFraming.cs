using System.Buffers;

namespace Pinhole.Transport.Stun;

/// <summary>
/// RFC 4571 framing, which ICE-TCP (RFC 6544 §3) uses to carry STUN, DTLS and SRTP over a TCP
/// connection: each packet is preceded by its length as a 16-bit big-endian number. Placeholder:
/// the implementation lands in a later commit.
/// </summary>
public static class IceTcpFraming
{
    /// <summary>The largest packet a frame can carry.</summary>
    public const int MaxPacketLength = ushort.MaxValue;

    /// <summary>Bytes the length prefix takes.</summary>
    public const int PrefixLength = 2;

    /// <summary>
    /// Reads one frame. False means "need more bytes" and consumes nothing; true advances
    /// <paramref name="reader"/> past the frame and returns its packet (a slice of the input).
    /// </summary>
    public static bool TryReadFrame(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> packet) => throw new NotImplementedException();

    /// <summary>Writes the length prefix and <paramref name="packet"/> into <paramref name="destination"/>; returns the bytes written.</summary>
    public static int WriteFrame(ReadOnlySpan<byte> packet, Span<byte> destination) => throw new NotImplementedException();

    /// <summary>The framed packet as a new array.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> packet) => throw new NotImplementedException();
}
