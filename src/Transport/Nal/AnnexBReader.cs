using System.Buffers;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Nal;

/// <summary>
/// Splits an H.264/H.265 Annex-B byte stream (ITU-T H.264 Annex B: NAL units after 00 00 01 or
/// 00 00 00 01 start codes) into NAL units, e.g. from a capture pipe. Pure: TryRead returns false
/// and consumes nothing until the next start code (or the end of the stream) shows where the NAL ends.
/// </summary>
public static class AnnexBReader
{
    /// <summary>Largest NAL unit accepted; a longer run without a start code is malformed.</summary>
    public const int MaxNalUnitBytes = 8 * 1024 * 1024;

    /// <summary>
    /// Reads the next NAL unit (without start code and trailing zero bytes). Leading bytes before the
    /// first start code are skipped. <paramref name="isFinal"/> says no more bytes will come, so the
    /// last NAL ends at the end of the data.
    /// </summary>
    public static bool TryReadNalUnit(ref SequenceReader<byte> reader, bool isFinal, out ReadOnlySequence<byte> nal)
    {
        nal = default;
        while (true)
        {
            var data = reader.UnreadSequence;
            if (!TryFindStartCode(data, out var first))
            {
                if (isFinal) { reader.AdvanceToEnd(); return false; }
                if (data.Length > MaxNalUnitBytes) throw new MediaFormatException("Annex-B stream without a start code");
                return false;
            }
            var body = data.Slice(first + 3);
            if (TryFindStartCode(body, out var next))
            {
                if (next > MaxNalUnitBytes) throw new MediaFormatException($"Annex-B NAL unit longer than {MaxNalUnitBytes} bytes");
                nal = TrimTrailingZeros(body.Slice(0, next));
                reader.Advance(first + 3 + next); // stop at the next start code
                if (nal.Length == 0) continue;  // empty NAL between two start codes
                return true;
            }
            if (body.Length > MaxNalUnitBytes) throw new MediaFormatException($"Annex-B NAL unit longer than {MaxNalUnitBytes} bytes");
            if (!isFinal) return false;
            nal = TrimTrailingZeros(body);
            reader.AdvanceToEnd();
            return nal.Length > 0;
        }
    }

    // Offset of the first 00 00 01 in data.
    private static bool TryFindStartCode(ReadOnlySequence<byte> data, out long offset)
    {
        var r = new SequenceReader<byte>(data);
        while (r.TryAdvanceTo(0, advancePastDelimiter: false))
        {
            if (r.IsNext([0, 0, 1], advancePast: false))
            {
                offset = r.Consumed;
                return true;
            }
            r.Advance(1);
        }
        offset = -1;
        return false;
    }

    private static ReadOnlySequence<byte> TrimTrailingZeros(ReadOnlySequence<byte> s)
    {
        // trailing_zero_8bits and the leading zero of a 4-byte start code belong to no NAL unit.
        var length = s.Length;
        while (length > 0 && s.Slice(length - 1, 1).FirstSpan[0] == 0) length--;
        return s.Slice(0, length);
    }
}
