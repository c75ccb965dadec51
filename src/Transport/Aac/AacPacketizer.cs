using System.Buffers.Binary;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.Aac;

/// <summary>
/// RTP packetizer for AAC in RFC 3640 mode AAC-hbr (sizeLength=13, indexLength=3,
/// indexDeltaLength=3): one access unit per packet behind a 16-bit AU-headers-length and one
/// 16-bit AU header; an access unit larger than the packet is fragmented (§3.2.3).
/// </summary>
internal sealed class AacPacketizer : RtpPacketizer
{
    /// <summary>Largest access unit an AU header can describe (13-bit AU-size).</summary>
    public const int MaxAccessUnitSize = (1 << 13) - 1;

    /// <summary>Creates the packetizer for an AAC track.</summary>
    /// <param name="track">The track (codec must be AAC); its clock rate is the sample rate.</param>
    /// <param name="payloadType">Dynamic payload type, usually 97.</param>
    /// <param name="options">Packet size and starting points; null for defaults.</param>
    public AacPacketizer(TrackInfo track, byte payloadType = 97, RtpPacketizerOptions? options = null)
        : base(payloadType, Checked(track).ClockRate, options)
    {
    }

    private static TrackInfo Checked(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        if (track.Codec != MediaCodec.Aac) throw new ArgumentException("track is not AAC", nameof(track));
        return track;
    }

    /// <summary>Access units dropped because they were larger than <see cref="MaxAccessUnitSize"/>.</summary>
    public long OversizedDropped { get; private set; }

    /// <inheritdoc />
    public override bool TryUpdateTrack(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        // A new AudioSpecificConfig changes what config= in the SDP says; only the same clock can continue.
        return track.Codec == MediaCodec.Aac && track.ClockRate == ClockRate;
    }

    /// <inheritdoc />
    public override void Packetize(in AccessUnit unit, RtpPacketHandler output)
    {
        var au = unit.Data.Span;
        if (au.IsEmpty) return;
        if (au.Length > MaxAccessUnitSize)
        {
            OversizedDropped++;
            return;
        }
        var timestamp = ToRtpTimestamp(unit.Pts);
        // §3.3.6: AU-headers-length in bits (one 16-bit header), then AU-size (13 bits) and AU-index (3 bits, 0).
        Span<byte> headers = stackalloc byte[4];
        BinaryPrimitives.WriteUInt16BigEndian(headers, 16);
        BinaryPrimitives.WriteUInt16BigEndian(headers[2..], (ushort)(au.Length << 3));
        var chunk = MaxPayloadSize - headers.Length;
        // §3.2.3: every fragment repeats the AU header with the size of the whole access unit; the
        // marker bit is set on the last fragment, and on every packet that holds whole access units.
        while (!au.IsEmpty)
        {
            var take = Math.Min(chunk, au.Length);
            Emit(output, timestamp, marker: take == au.Length, headers, au[..take]);
            au = au[take..];
        }
    }
}
