using System.Buffers;
using System.Buffers.Binary;

namespace Pinhole.Transport.Stun;

/// <summary>
/// RFC 4571 framing, which ICE-TCP (RFC 6544 §3) uses to carry STUN, DTLS and SRTP over a TCP
/// connection: each packet is preceded by its length as a 16-bit big-endian number. Pure: the
/// reader takes whatever bytes have arrived and says "need more" until a whole frame is there.
/// </summary>
/// <remarks>
/// The length prefix caps a frame at 65535 bytes, so a reader never buffers more than that per
/// frame. A zero-length frame yields an empty packet, which callers skip.
/// </remarks>
public static class IceTcpFraming
{
    /// <summary>The largest packet a frame can carry.</summary>
    public const int MaxPacketLength = ushort.MaxValue;

    /// <summary>Bytes the length prefix takes.</summary>
    public const int PrefixLength = 2;

    /// <summary>
    /// Reads one frame. False means "need more bytes" and consumes nothing; true advances
    /// <paramref name="reader"/> past the frame and returns its packet (a slice of the input, valid
    /// while the input is).
    /// </summary>
    public static bool TryReadFrame(ref SequenceReader<byte> reader, out ReadOnlySequence<byte> packet)
    {
        packet = default;
        Span<byte> prefix = stackalloc byte[PrefixLength];
        if (!reader.TryCopyTo(prefix)) return false;
        var length = BinaryPrimitives.ReadUInt16BigEndian(prefix);
        if (reader.Remaining < PrefixLength + length) return false;
        reader.Advance(PrefixLength);
        packet = reader.UnreadSequence.Slice(0, length);
        reader.Advance(length);
        return true;
    }

    /// <summary>Writes the length prefix and <paramref name="packet"/> into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentException">The packet is longer than 65535 bytes or <paramref name="destination"/> is too small.</exception>
    public static int WriteFrame(ReadOnlySpan<byte> packet, Span<byte> destination)
    {
        if (packet.Length > MaxPacketLength) throw new ArgumentException($"an RFC 4571 frame carries at most {MaxPacketLength} bytes, not {packet.Length}", nameof(packet));
        if (destination.Length < PrefixLength + packet.Length) throw new ArgumentException($"destination needs {PrefixLength + packet.Length} bytes", nameof(destination));
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)packet.Length);
        packet.CopyTo(destination[PrefixLength..]);
        return PrefixLength + packet.Length;
    }

    /// <summary>The framed packet as a new array.</summary>
    /// <exception cref="ArgumentException">The packet is longer than 65535 bytes.</exception>
    public static byte[] Frame(ReadOnlySpan<byte> packet)
    {
        if (packet.Length > MaxPacketLength) throw new ArgumentException($"an RFC 4571 frame carries at most {MaxPacketLength} bytes, not {packet.Length}", nameof(packet));
        var frame = new byte[PrefixLength + packet.Length];
        WriteFrame(packet, frame);
        return frame;
    }
}
