using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.H265;

/// <summary>
/// RTP payload format for H.265 (RFC 7798) without DONL (sprop-max-don-diff = 0, the default):
/// single NAL unit packets (§4.4.1), aggregation packets (§4.4.2) and fragmentation units (§4.4.3).
/// Where an access unit ends (not at every marker bit) is <see cref="NalUnitDepacketizer"/>'s.
/// </summary>
internal sealed class H265Depacketizer : NalUnitDepacketizer
{
    private const int Ap = 48, Fu = 49, Paci = 50;

    /// <summary>Creates the depacketizer; <paramref name="parameterSets"/> from SDP <c>sprop-vps/sps/pps</c>, if any.</summary>
    public H265Depacketizer(int track, IEnumerable<ReadOnlyMemory<byte>>? parameterSets = null)
        : base(track, MediaCodec.H265, parameterSets, "H.265 marker bit set inside an unfinished FU") { }

    /// <summary>Parses the base64 NAL units of <c>sprop-vps</c>, <c>sprop-sps</c>, <c>sprop-pps</c> (RFC 7798 §7.1).</summary>
    public static IReadOnlyList<ReadOnlyMemory<byte>> ParseSpropParameterSets(IReadOnlyDictionary<string, string> fmtp)
    {
        ArgumentNullException.ThrowIfNull(fmtp);
        var list = new List<ReadOnlyMemory<byte>>();
        foreach (var name in new[] { "sprop-vps", "sprop-sps", "sprop-pps" })
            if (fmtp.TryGetValue(name, out var v)) list.AddRange(FragmentBuffer.ParseBase64List(v, name));
        return list;
    }

    /// <inheritdoc />
    private protected override void DepacketizePayload(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length < 3) throw new MediaFormatException("H.265 RTP payload shorter than a NAL unit header plus one byte");
        var type = (payload.Span[0] >> 1) & 0x3f;
        switch (type)
        {
            case < Ap:
                if (Fragment.InProgress) throw new MediaFormatException("H.265 single NAL unit inside an unfinished FU");
                AddNal(payload.Span);
                AfterLoss = false;
                break;
            case Ap:
                {
                    if (Fragment.InProgress) throw new MediaFormatException("H.265 AP inside an unfinished FU");
                    // §4.4.2: PayloadHdr, then (16-bit NALU size, NAL unit) repeated; no DONL fields.
                    AfterLoss = false;
                    var offset = 2;
                    var count = 0;
                    while (offset < payload.Length)
                    {
                        if (payload.Length - offset < 2) throw new MediaFormatException("H.265 AP truncated in a NAL unit size");
                        var size = (payload.Span[offset] << 8) | payload.Span[offset + 1];
                        offset += 2;
                        if (size < 2 || size > payload.Length - offset) throw new MediaFormatException($"H.265 AP NAL unit size {size} is too small or past the packet end");
                        AddNal(payload.Span.Slice(offset, size));
                        offset += size;
                        count++;
                    }
                    if (count == 0) throw new MediaFormatException("H.265 AP without NAL units");
                    break;
                }
            case Fu:
                {
                    // §4.4.3: PayloadHdr (2 bytes, type 49), FU header (S E FuType).
                    var header = payload.Span[2];
                    bool start = (header & 0x80) != 0, end = (header & 0x40) != 0;
                    var fuType = header & 0x3f;
                    if (start && end) throw new MediaFormatException("H.265 FU with both start and end bits (RFC 7798 §4.4.3)");
                    if (start)
                    {
                        AfterLoss = false;
                        if (Fragment.InProgress) throw new MediaFormatException("H.265 FU start before the previous FU ended");
                        // Rebuild the NAL header: F and LayerId from PayloadHdr, type from the FU header.
                        var b0 = (byte)((payload.Span[0] & 0x81) | (fuType << 1));
                        // The start fragment holds the first slice segment header byte (first_slice_segment_in_pic_flag).
                        if (payload.Length > 3) StartFragment([b0, payload.Span[1], payload.Span[3]]);
                        else StartFragment([b0, payload.Span[1]]);
                        Fragment.Start([b0, payload.Span[1]], payload.Span[3..]);
                    }
                    else
                    {
                        if (!Fragment.InProgress)
                        {
                            // After a loss the rest of a fragmented NAL is expected and dropped (the unit is broken anyway).
                            if (AfterLoss) break;
                            throw new MediaFormatException("H.265 FU continuation without a start");
                        }
                        Fragment.Append(payload.Span[3..]);
                        if (end) AddNal(Fragment.Finish(), fragment: true);
                    }
                    break;
                }
            case Paci:
                throw new MediaFormatException("H.265 PACI packets are not supported");
            default:
                throw new MediaFormatException($"H.265 RTP packet with reserved type {type}");
        }
    }
}
