using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;

namespace Pinhole.Transport.H264;

/// <summary>
/// RTP payload format for H.264 (RFC 6184), packetization-mode 0 and 1: single NAL unit packets
/// (§5.6), STAP-A (§5.7.1) and FU-A (§5.8). Where an access unit ends (not at every marker bit,
/// §5.1) is <see cref="NalUnitDepacketizer"/>'s.
/// </summary>
internal sealed class H264Depacketizer : NalUnitDepacketizer
{
    private const int StapA = 24, StapB = 25, Mtap16 = 26, Mtap24 = 27, FuA = 28, FuB = 29;

    /// <summary>Creates the depacketizer; <paramref name="parameterSets"/> from SDP <c>sprop-parameter-sets</c>, if any.</summary>
    public H264Depacketizer(int track, IEnumerable<ReadOnlyMemory<byte>>? parameterSets = null)
        : base(track, MediaCodec.H264, parameterSets, "H.264 marker bit set inside an unfinished FU-A") { }

    /// <summary>Parses <c>sprop-parameter-sets</c> (RFC 6184 §8.1): comma-separated base64 NAL units.</summary>
    public static IReadOnlyList<ReadOnlyMemory<byte>> ParseSpropParameterSets(string? value) => FragmentBuffer.ParseBase64List(value, "sprop-parameter-sets");

    /// <inheritdoc />
    private protected override void DepacketizePayload(ReadOnlyMemory<byte> payload)
    {
        if (payload.Length < 1) throw new MediaFormatException("empty H.264 RTP payload");
        var type = payload.Span[0] & 0x1f;
        switch (type)
        {
            case >= 1 and <= 23:
                if (Fragment.InProgress) throw new MediaFormatException("H.264 single NAL unit inside an unfinished FU-A");
                AddNal(payload.Span);
                AfterLoss = false;
                break;
            case StapA:
                if (Fragment.InProgress) throw new MediaFormatException("H.264 STAP-A inside an unfinished FU-A");
                // §5.7.1: 16-bit NALU size, then the NAL unit; repeated.
                AfterLoss = false;
                var offset = 1;
                if (payload.Length < 3) throw new MediaFormatException("H.264 STAP-A without any NAL unit");
                while (offset < payload.Length)
                {
                    if (payload.Length - offset < 2) throw new MediaFormatException("H.264 STAP-A truncated in a NAL unit size");
                    var size = (payload.Span[offset] << 8) | payload.Span[offset + 1];
                    offset += 2;
                    if (size == 0 || size > payload.Length - offset) throw new MediaFormatException($"H.264 STAP-A NAL unit size {size} is zero or past the packet end");
                    AddNal(payload.Span.Slice(offset, size));
                    offset += size;
                }
                break;
            case FuA:
                {
                    // §5.8: FU indicator (F NRI type=28), FU header (S E R type).
                    if (payload.Length < 3) throw new MediaFormatException("H.264 FU-A shorter than its headers");
                    var indicator = payload.Span[0];
                    var header = payload.Span[1];
                    bool start = (header & 0x80) != 0, end = (header & 0x40) != 0;
                    if (start && end) throw new MediaFormatException("H.264 FU-A with both start and end bits (RFC 6184 §5.8)");
                    if (start)
                    {
                        AfterLoss = false;
                        if (Fragment.InProgress) throw new MediaFormatException("H.264 FU-A start before the previous FU-A ended");
                        var nalHeader = (byte)((indicator & 0xe0) | (header & 0x1f));
                        // The start fragment holds the first slice header byte (first_mb_in_slice).
                        StartFragment([nalHeader, payload.Span[2]]);
                        Fragment.Start(nalHeader, payload.Span[2..]);
                    }
                    else
                    {
                        if (!Fragment.InProgress)
                        {
                            // After a loss the rest of a fragmented NAL is expected and dropped (the unit is broken anyway).
                            if (AfterLoss) break;
                            throw new MediaFormatException("H.264 FU-A continuation without a start");
                        }
                        Fragment.Append(payload.Span[2..]);
                        if (end) AddNal(Fragment.Finish(), fragment: true);
                    }
                    break;
                }
            case StapB or Mtap16 or Mtap24 or FuB:
                throw new MediaFormatException($"H.264 RTP packet type {type} needs interleaved mode (packetization-mode=2), which is not supported");
            default:
                throw new MediaFormatException($"H.264 RTP packet with reserved NAL unit type {type}");
        }
    }
}
