using System.Buffers.Binary;
using System.Security.Cryptography;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Rtp;

/// <summary>Receives one RTP packet (header and payload). The span is only valid during the call.</summary>
/// <param name="packet">The whole packet, RFC 3550 §5.1 fixed header first.</param>
public delegate void RtpPacketHandler(ReadOnlySpan<byte> packet);

/// <summary>Settings of one RTP sender (one track of one session).</summary>
public sealed record RtpPacketizerOptions
{
    /// <summary>Default largest RTP packet (header plus payload): leaves room for IPv6, UDP and a tunnel on a 1500-byte link.</summary>
    public const int DefaultMaxPacketSize = 1400;

    /// <summary>Largest RTP packet in bytes, the 12-byte fixed header included.</summary>
    public int MaxPacketSize { get; init; } = DefaultMaxPacketSize;

    /// <summary>Synchronisation source; random when null (RFC 3550 §8).</summary>
    public uint? Ssrc { get; init; }

    /// <summary>First sequence number; random when null (RFC 3550 §5.1).</summary>
    public ushort? InitialSequenceNumber { get; init; }

    /// <summary>Added to every PTS before it is truncated to 32 bits; random when null (RFC 3550 §5.1).</summary>
    public uint? TimestampOffset { get; init; }
}

/// <summary>
/// Turns access units of one track into RTP packets (RFC 3550) no larger than
/// <see cref="RtpPacketizerOptions.MaxPacketSize"/>. Pure: no sockets, no clocks; the caller
/// decides where packets go. One instance per track per session, not thread-safe.
/// </summary>
public abstract class RtpPacketizer
{
    /// <summary>Size of the RTP fixed header without CSRCs (RFC 3550 §5.1).</summary>
    public const int HeaderSize = 12;

    private readonly byte[] _packet;

    /// <summary>Creates the sender state.</summary>
    /// <param name="payloadType">RTP payload type (static or dynamic, 0..127).</param>
    /// <param name="clockRate">RTP clock rate of the payload format.</param>
    /// <param name="options">Packet size and the random starting points; null for defaults.</param>
    protected RtpPacketizer(byte payloadType, int clockRate, RtpPacketizerOptions? options)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payloadType, (byte)127);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clockRate);
        options ??= new RtpPacketizerOptions();
        // Below this a FU/AU header plus one byte of payload would not fit.
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxPacketSize, HeaderSize + 8);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.MaxPacketSize, 65_535);
        PayloadType = payloadType;
        ClockRate = clockRate;
        MaxPacketSize = options.MaxPacketSize;
        Ssrc = options.Ssrc ?? RandomUInt32();
        SequenceNumber = options.InitialSequenceNumber ?? (ushort)RandomNumberGenerator.GetInt32(0, 65_536);
        TimestampOffset = options.TimestampOffset ?? RandomUInt32();
        _packet = new byte[MaxPacketSize];
    }

    /// <summary>RTP payload type written in every packet.</summary>
    public byte PayloadType { get; }

    /// <summary>RTP clock rate (timestamps of access units must already be in this rate).</summary>
    public int ClockRate { get; }

    /// <summary>Largest packet, header included.</summary>
    public int MaxPacketSize { get; }

    /// <summary>Largest payload of one packet.</summary>
    protected int MaxPayloadSize => MaxPacketSize - HeaderSize;

    /// <summary>Synchronisation source identifier.</summary>
    public uint Ssrc { get; }

    /// <summary>Sequence number of the next packet.</summary>
    public ushort SequenceNumber { get; private set; }

    /// <summary>Added to the PTS (modulo 2^32) to form the RTP timestamp. May be changed between access units,
    /// for example to align the tracks of a session on a common start.</summary>
    public uint TimestampOffset { get; set; }

    /// <summary>Packets produced so far (RTCP SR sender's packet count, RFC 3550 §6.4.1).</summary>
    public long PacketCount { get; private set; }

    /// <summary>Payload octets produced so far (RTCP SR sender's octet count).</summary>
    public long OctetCount { get; private set; }

    /// <summary>RTP timestamp of the last packet produced.</summary>
    public uint LastTimestamp { get; private set; }

    /// <summary>The RTP timestamp for a presentation time: PTS plus <see cref="TimestampOffset"/>, modulo 2^32.</summary>
    public uint ToRtpTimestamp(long pts) => unchecked((uint)pts + TimestampOffset);

    /// <summary>Splits one access unit into packets and hands each to <paramref name="output"/>, in order.
    /// Malformed payloads (a NAL length running past the end) are cut at the last whole unit.</summary>
    public abstract void Packetize(in AccessUnit unit, RtpPacketHandler output);

    /// <summary>Takes a new configuration of the same codec (for example new SPS/PPS) without
    /// restarting sequence numbers or timestamps. False when the codec or clock differs: the
    /// session has to be set up again.</summary>
    public abstract bool TryUpdateTrack(TrackInfo track);

    /// <summary>Writes one packet from up to three payload pieces and hands it to <paramref name="output"/>.</summary>
    protected void Emit(RtpPacketHandler output, uint timestamp, bool marker,
        ReadOnlySpan<byte> payloadHeader, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> payloadTail = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        var length = HeaderSize + payloadHeader.Length + payload.Length + payloadTail.Length;
        if (length > MaxPacketSize) throw new InvalidOperationException("packetizer produced an oversized packet");
        var p = _packet.AsSpan(0, length);
        // RFC 3550 §5.1: V=2, P=0, X=0, CC=0 | M, PT | sequence number | timestamp | SSRC.
        p[0] = 0x80;
        p[1] = (byte)((marker ? 0x80 : 0) | PayloadType);
        BinaryPrimitives.WriteUInt16BigEndian(p[2..], SequenceNumber);
        BinaryPrimitives.WriteUInt32BigEndian(p[4..], timestamp);
        BinaryPrimitives.WriteUInt32BigEndian(p[8..], Ssrc);
        payloadHeader.CopyTo(p[HeaderSize..]);
        payload.CopyTo(p[(HeaderSize + payloadHeader.Length)..]);
        payloadTail.CopyTo(p[(HeaderSize + payloadHeader.Length + payload.Length)..]);
        SequenceNumber = unchecked((ushort)(SequenceNumber + 1));
        PacketCount++;
        OctetCount += length - HeaderSize;
        LastTimestamp = timestamp;
        output(p);
    }

    private static uint RandomUInt32()
    {
        Span<byte> b = stackalloc byte[4];
        RandomNumberGenerator.Fill(b);
        return BinaryPrimitives.ReadUInt32BigEndian(b);
    }
}
