using System.Buffers.Binary;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.Nal;

/// <summary>
/// What H.264 (RFC 6184) and H.265 (RFC 7798) packetization share: walk the AVCC-style NAL units
/// of an access unit, send a NAL unit whole when it fits, fragment it (FU-A / FU) when it does not,
/// aggregate the parameter sets in one packet (STAP-A / AP) when they are re-sent before a keyframe,
/// and set the marker bit on the last packet of the access unit.
/// </summary>
internal abstract class NalUnitPacketizer : RtpPacketizer
{
    private const int LengthPrefixSize = 4;
    private IReadOnlyList<ReadOnlyMemory<byte>> _parameterSets;
    private readonly MediaCodec _codec;

    /// <summary>Creates the packetizer for a video track.</summary>
    private protected NalUnitPacketizer(TrackInfo track, byte payloadType, RtpPacketizerOptions? options)
        : base(payloadType, track.ClockRate, options)
    {
        _codec = track.Codec;
        _parameterSets = track.ParameterSets;
    }

    /// <summary>Bytes of the NAL unit header: 1 for H.264, 2 for H.265.</summary>
    private protected abstract int NalHeaderSize { get; }


    /// <summary>The parameter set types the track must have in band before a keyframe.</summary>
    private protected abstract int RequiredParameterSetMask(ReadOnlySpan<byte> nal);

    /// <summary>Bit mask with one bit per parameter set type required (all ones is "complete").</summary>
    private protected abstract int AllParameterSetsMask { get; }

    /// <summary>Writes the payload header and FU header of one fragment; returns their length.</summary>
    private protected abstract int WriteFragmentHeader(ReadOnlySpan<byte> nalHeader, bool start, bool end, Span<byte> destination);

    /// <summary>Writes the payload header of an aggregation packet holding <paramref name="nals"/>; returns its length.</summary>
    private protected abstract int WriteAggregationHeader(IReadOnlyList<ReadOnlyMemory<byte>> nals, Span<byte> destination);

    /// <inheritdoc />
    public override bool TryUpdateTrack(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        if (track.Codec != _codec || track.ClockRate != ClockRate) return false;
        _parameterSets = track.ParameterSets;
        return true;
    }

    /// <inheritdoc />
    public override void Packetize(in AccessUnit unit, RtpPacketHandler output)
    {
        var timestamp = ToRtpTimestamp(unit.Pts);
        var data = unit.Data.Span;
        var end = ValidLength(data);
        if (end == 0) return;

        if (unit.IsKeyframe && !HasAllParameterSets(data[..end]))
            SendParameterSets(output, timestamp);

        var offset = 0;
        while (offset < end)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(data[offset..]);
            var nal = data.Slice(offset + LengthPrefixSize, length);
            offset += LengthPrefixSize + length;
            SendNal(output, timestamp, nal, last: offset >= end);
        }
    }

    // Length of the prefix of whole, well-formed NAL units; a malformed tail is not sent.
    private int ValidLength(ReadOnlySpan<byte> data)
    {
        var offset = 0;
        while (data.Length - offset >= LengthPrefixSize)
        {
            var length = BinaryPrimitives.ReadUInt32BigEndian(data[offset..]);
            if (length < (uint)NalHeaderSize || length > (uint)(data.Length - offset - LengthPrefixSize)) break;
            offset += LengthPrefixSize + (int)length;
        }
        return offset;
    }

    private bool HasAllParameterSets(ReadOnlySpan<byte> data)
    {
        var mask = 0;
        for (var offset = 0; offset < data.Length;)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(data[offset..]);
            mask |= RequiredParameterSetMask(data.Slice(offset + LengthPrefixSize, length));
            offset += LengthPrefixSize + length;
        }
        return mask == AllParameterSetsMask;
    }

    // Parameter sets from the track go before a keyframe that lacks them, so a viewer joining at
    // any keyframe (or one that ignores sprop-parameter-sets) can decode. RFC 6184 §8.4 / RFC 7798 §7.2.
    private void SendParameterSets(RtpPacketHandler output, uint timestamp)
    {
        // Plain loops, not LINQ: this runs before keyframes, and the filter lambda would capture this.
        var count = 0;
        var bodySize = 0;
        foreach (var p in _parameterSets)
        {
            if (p.Length < NalHeaderSize) continue;
            count++;
            bodySize += 2 + p.Length;
        }
        if (count == 0) return;
        var sets = new ReadOnlyMemory<byte>[count];
        count = 0;
        foreach (var p in _parameterSets)
            if (p.Length >= NalHeaderSize) sets[count++] = p;
        Span<byte> header = stackalloc byte[2];
        var headerLength = WriteAggregationHeader(sets, header);
        if (sets.Length > 1 && headerLength + bodySize <= MaxPayloadSize)
        {
            // RFC 6184 §5.7.1 STAP-A / RFC 7798 §4.4.2 AP: header, then (16-bit size, NAL unit) per unit.
            var body = new byte[bodySize];
            var at = 0;
            foreach (var s in sets)
            {
                BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(at), (ushort)s.Length);
                s.Span.CopyTo(body.AsSpan(at + 2));
                at += 2 + s.Length;
            }
            Emit(output, timestamp, marker: false, header[..headerLength], body);
            return;
        }
        foreach (var s in sets) SendNal(output, timestamp, s.Span, last: false);
    }

    private void SendNal(RtpPacketHandler output, uint timestamp, ReadOnlySpan<byte> nal, bool last)
    {
        if (nal.Length <= MaxPayloadSize)
        {
            // RFC 6184 §5.6 / RFC 7798 §4.4.1: single NAL unit packet.
            Emit(output, timestamp, last, default, nal);
            return;
        }
        // RFC 6184 §5.8 FU-A / RFC 7798 §4.4.3 FU: the NAL header is replaced by the payload and FU
        // headers, so the fragments carry only the bytes after it.
        Span<byte> fuHeader = stackalloc byte[3];
        var nalHeader = nal[..NalHeaderSize];
        var rest = nal[NalHeaderSize..];
        var headerLength = WriteFragmentHeader(nalHeader, true, false, fuHeader);
        var chunk = MaxPayloadSize - headerLength;
        var first = true;
        while (rest.Length > 0)
        {
            var take = Math.Min(chunk, rest.Length);
            var end = take == rest.Length;
            WriteFragmentHeader(nalHeader, first, end, fuHeader);
            Emit(output, timestamp, end && last, fuHeader[..headerLength], rest[..take]);
            rest = rest[take..];
            first = false;
        }
    }
}
