using System.Buffers.Binary;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtp;

/// <summary>
/// An RTP data packet (RFC 3550 §5.1). <see cref="Payload"/> and <see cref="ExtensionData"/> are
/// slices of the parsed buffer, which must stay unchanged while the packet is in use.
/// </summary>
public sealed class RtpPacket
{
    /// <summary>Fixed header length in bytes.</summary>
    public const int FixedHeaderLength = 12;

    /// <summary>The only RTP version (RFC 3550 §5.1).</summary>
    public const int RtpVersion = 2;

    /// <summary>M: the marker bit; for video, the last packet of an access unit (RFC 6184 §5.1).</summary>
    public bool Marker { get; init; }

    /// <summary>PT: the payload type (7 bits).</summary>
    public byte PayloadType { get; init; }

    /// <summary>Sequence number (16 bits, wraps).</summary>
    public ushort SequenceNumber { get; init; }

    /// <summary>Timestamp in the payload's clock (32 bits, wraps).</summary>
    public uint Timestamp { get; init; }

    /// <summary>SSRC: the synchronization source.</summary>
    public uint Ssrc { get; init; }

    /// <summary>CSRC list (0–15 entries).</summary>
    public IReadOnlyList<uint> Csrcs { get; init; } = [];

    /// <summary>True when a header extension is present (X bit).</summary>
    public bool HasExtension { get; init; }

    /// <summary>The header extension's 16-bit profile-defined value.</summary>
    public ushort ExtensionProfile { get; init; }

    /// <summary>The header extension's data (a multiple of 4 bytes).</summary>
    public ReadOnlyMemory<byte> ExtensionData { get; init; }

    /// <summary>Bytes of padding at the end (P bit); not part of <see cref="Payload"/>.</summary>
    public int PaddingLength { get; init; }

    /// <summary>The payload, without header, extension or padding.</summary>
    public ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>Parses a whole packet (one datagram or one interleaved frame).</summary>
    public static RtpPacket Parse(ReadOnlyMemory<byte> packet)
    {
        var s = packet.Span;
        if (s.Length < FixedHeaderLength) throw new MediaFormatException($"RTP packet of {s.Length} bytes is shorter than the 12-byte header");
        if (s[0] >> 6 != RtpVersion) throw new MediaFormatException($"RTP version {s[0] >> 6}, expected 2");
        var padding = (s[0] & 0x20) != 0;
        var extension = (s[0] & 0x10) != 0;
        var csrcCount = s[0] & 0x0f;
        var offset = FixedHeaderLength + 4 * csrcCount;
        if (s.Length < offset) throw new MediaFormatException("RTP packet shorter than its CSRC list");
        var csrcs = csrcCount == 0 ? [] : new uint[csrcCount]; // per packet: no allocation in the usual case
        for (var i = 0; i < csrcCount; i++) csrcs[i] = BinaryPrimitives.ReadUInt32BigEndian(s[(FixedHeaderLength + 4 * i)..]);
        ushort profile = 0;
        ReadOnlyMemory<byte> extData = default;
        if (extension)
        {
            // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words, then the data.
            if (s.Length < offset + 4) throw new MediaFormatException("RTP packet shorter than its header extension");
            profile = BinaryPrimitives.ReadUInt16BigEndian(s[offset..]);
            var words = BinaryPrimitives.ReadUInt16BigEndian(s[(offset + 2)..]);
            offset += 4;
            if (s.Length < offset + 4 * words) throw new MediaFormatException("RTP header extension longer than the packet");
            extData = packet.Slice(offset, 4 * words);
            offset += 4 * words;
        }
        var end = s.Length;
        var padLength = 0;
        if (padding)
        {
            // RFC 3550 §5.1: the last octet counts the padding, itself included.
            padLength = s[^1];
            if (padLength == 0 || end - padLength < offset) throw new MediaFormatException("RTP padding length is zero or longer than the payload");
            end -= padLength;
        }
        return new RtpPacket
        {
            Marker = (s[1] & 0x80) != 0,
            PayloadType = (byte)(s[1] & 0x7f),
            SequenceNumber = BinaryPrimitives.ReadUInt16BigEndian(s[2..]),
            Timestamp = BinaryPrimitives.ReadUInt32BigEndian(s[4..]),
            Ssrc = BinaryPrimitives.ReadUInt32BigEndian(s[8..]),
            Csrcs = csrcs,
            HasExtension = extension,
            ExtensionProfile = profile,
            ExtensionData = extData,
            PaddingLength = padLength,
            Payload = packet[offset..end],
        };
    }

    /// <summary>Serialized length of this packet.</summary>
    public int Length => FixedHeaderLength + 4 * Csrcs.Count + (HasExtension ? 4 + ExtensionData.Length : 0) + Payload.Length + PaddingLength;

    /// <summary>Writes the packet into <paramref name="destination"/>; returns the bytes written.</summary>
    internal int WriteTo(Span<byte> destination)
    {
        if (Csrcs.Count > 15) throw new InvalidOperationException("RTP allows at most 15 CSRCs");
        if (ExtensionData.Length % 4 != 0) throw new InvalidOperationException("RTP header extension must be a multiple of 4 bytes");
        if (PaddingLength > 255) throw new InvalidOperationException("RTP padding is at most 255 bytes");
        var length = Length;
        if (destination.Length < length) throw new ArgumentException("destination too small", nameof(destination));
        destination[0] = (byte)((RtpVersion << 6) | (PaddingLength > 0 ? 0x20 : 0) | (HasExtension ? 0x10 : 0) | Csrcs.Count);
        destination[1] = (byte)((Marker ? 0x80 : 0) | (PayloadType & 0x7f));
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], SequenceNumber);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], Timestamp);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Ssrc);
        var o = FixedHeaderLength;
        foreach (var c in Csrcs) { BinaryPrimitives.WriteUInt32BigEndian(destination[o..], c); o += 4; }
        if (HasExtension)
        {
            BinaryPrimitives.WriteUInt16BigEndian(destination[o..], ExtensionProfile);
            BinaryPrimitives.WriteUInt16BigEndian(destination[(o + 2)..], (ushort)(ExtensionData.Length / 4));
            ExtensionData.Span.CopyTo(destination[(o + 4)..]);
            o += 4 + ExtensionData.Length;
        }
        Payload.Span.CopyTo(destination[o..]);
        o += Payload.Length;
        if (PaddingLength > 0)
        {
            destination.Slice(o, PaddingLength - 1).Clear();
            destination[o + PaddingLength - 1] = (byte)PaddingLength;
            o += PaddingLength;
        }
        return o;
    }

    /// <summary>Serializes to a new array.</summary>
    public byte[] ToArray()
    {
        var b = new byte[Length];
        WriteTo(b);
        return b;
    }
}
