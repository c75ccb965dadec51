using Pinhole.Transport.Media;

namespace Pinhole.Transport.H264;

/// <summary>
/// Finds where access units begin in a NAL unit sequence without timestamps (an Annex-B pipe):
/// H.264 §7.4.1.2.3 and H.265 §7.4.2.4.4 list the NAL units that may only start an access unit.
/// </summary>
public static class AccessUnitBoundary
{
    /// <summary>True when <paramref name="nal"/> begins a new access unit, given that the current
    /// one already holds a VCL (picture) NAL unit (<paramref name="currentHasVcl"/>).</summary>
    public static bool StartsNewAccessUnit(MediaCodec codec, ReadOnlySpan<byte> nal, bool currentHasVcl)
    {
        if (!currentHasVcl || nal.IsEmpty) return false;
        if (codec == MediaCodec.H264)
        {
            var type = nal[0] & 0x1f;
            // AUD, SPS, PPS, SEI and types 14..18 precede the first slice of an access unit.
            if (type is 6 or 7 or 8 or 9 or (>= 14 and <= 18)) return true;
            // A slice with first_mb_in_slice == 0 (ue(v) "1" bit) starts a new primary picture.
            return type is >= 1 and <= 5 && nal.Length > 1 && (nal[1] & 0x80) != 0;
        }
        if (codec == MediaCodec.H265)
        {
            if (nal.Length < 3) return false;
            var type = (nal[0] >> 1) & 0x3f;
            if (type is 32 or 33 or 34 or 35 or 39 or (>= 41 and <= 44) or (>= 48 and <= 55)) return true;
            // first_slice_segment_in_pic_flag is the first bit after the two-byte header.
            return type <= 31 && (nal[2] & 0x80) != 0;
        }
        throw new ArgumentException("only H.264 and H.265 have NAL units", nameof(codec));
    }

    /// <summary>True for VCL (coded picture) NAL units.</summary>
    public static bool IsVcl(MediaCodec codec, ReadOnlySpan<byte> nal) =>
        !nal.IsEmpty && (codec == MediaCodec.H264 ? (nal[0] & 0x1f) is >= 1 and <= 5 : ((nal[0] >> 1) & 0x3f) <= 31);
}
