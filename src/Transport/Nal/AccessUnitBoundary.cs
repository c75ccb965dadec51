using Pinhole.Transport.Media;

namespace Pinhole.Transport.Nal;

/// <summary>What a NAL unit says about the access unit it belongs to, from its first bytes alone.</summary>
internal enum NalUnitRole
{
    /// <summary>Says nothing: suffix SEI, filler, end of sequence, reserved types, a truncated slice.</summary>
    Neutral,

    /// <summary>May only come before the first slice of an access unit (AUD, prefix SEI, types 14..18 / 41..44, 48..55).</summary>
    AccessUnitStart,

    /// <summary>A parameter set (SPS, PPS; VPS too for H.265): it starts an access unit unless it repeats one already in it.</summary>
    ParameterSet,

    /// <summary>The first slice of a picture: H.264 <c>first_mb_in_slice</c> = 0, H.265 <c>first_slice_segment_in_pic_flag</c> = 1.</summary>
    FirstSlice,

    /// <summary>A later slice of the picture that is being collected.</summary>
    NextSlice,
}

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
        return Classify(codec, nal) is NalUnitRole.AccessUnitStart or NalUnitRole.ParameterSet or NalUnitRole.FirstSlice;
    }

    /// <summary>
    /// Classifies a NAL unit from its header and, for a slice, the first byte of its slice header, so
    /// the start fragment of a fragmented slice (RFC 6184 FU-A, RFC 7798 FU) is enough.
    /// </summary>
    /// <param name="codec">H.264 or H.265.</param>
    /// <param name="head">The NAL unit, or at least its header and the byte after it (H.264: 2 bytes, H.265: 3).</param>
    internal static NalUnitRole Classify(MediaCodec codec, ReadOnlySpan<byte> head)
    {
        if (codec == MediaCodec.H264)
        {
            if (head.IsEmpty) return NalUnitRole.Neutral;
            var type = head[0] & 0x1f;
            if (type is 7 or 8) return NalUnitRole.ParameterSet;
            // AUD, SEI and types 14..18 precede the first slice of an access unit.
            if (type is 6 or 9 or (>= 14 and <= 18)) return NalUnitRole.AccessUnitStart;
            if (type is >= 1 and <= 5 && head.Length > 1)
            {
                // first_mb_in_slice is ue(v), the first field of the slice header (§7.3.3): the
                // codeword of 0 is the single bit "1"; any other value starts with a 0 bit.
                return (head[1] & 0x80) != 0 ? NalUnitRole.FirstSlice : NalUnitRole.NextSlice;
            }
            return NalUnitRole.Neutral;
        }
        if (codec == MediaCodec.H265)
        {
            if (head.Length < 2) return NalUnitRole.Neutral;
            var type = (head[0] >> 1) & 0x3f;
            if (type is 32 or 33 or 34) return NalUnitRole.ParameterSet;
            // AUD, prefix SEI (39; the suffix SEI 40 ends an access unit), 41..44 and 48..55 (§7.4.2.4.4).
            if (type is 35 or 39 or (>= 41 and <= 44) or (>= 48 and <= 55)) return NalUnitRole.AccessUnitStart;
            // first_slice_segment_in_pic_flag is the first bit after the two-byte header (§7.3.6.1).
            if (type <= 31 && head.Length > 2) return (head[2] & 0x80) != 0 ? NalUnitRole.FirstSlice : NalUnitRole.NextSlice;
            return NalUnitRole.Neutral;
        }
        throw new ArgumentException("only H.264 and H.265 have NAL units", nameof(codec));
    }

    /// <summary>
    /// True when an access unit (4-byte length-prefixed NAL units, as <see cref="AccessUnit"/> holds)
    /// provably continues a picture instead of starting one: its first slice is not a picture's
    /// first. Edges before #21 cut pictures at every marker bit, so a keyframe could arrive as a
    /// top half and a bottom half, both flagged as keyframes; only the top half is a place to start.
    /// </summary>
    public static bool ContinuesPicture(MediaCodec codec, ReadOnlySpan<byte> lengthPrefixed)
    {
        if (!codec.IsVideo()) return false;
        while (lengthPrefixed.Length > 4)
        {
            var length = (int)Math.Min(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(lengthPrefixed), (uint)(lengthPrefixed.Length - 4));
            var nal = lengthPrefixed.Slice(4, length);
            if (IsVcl(codec, nal)) return Classify(codec, nal) == NalUnitRole.NextSlice;
            lengthPrefixed = lengthPrefixed[(4 + length)..];
        }
        return false;
    }

    /// <summary>True for VCL (coded picture) NAL units.</summary>
    public static bool IsVcl(MediaCodec codec, ReadOnlySpan<byte> nal) =>
        !nal.IsEmpty && (codec == MediaCodec.H264 ? (nal[0] & 0x1f) is >= 1 and <= 5 : ((nal[0] >> 1) & 0x3f) <= 31);
}
