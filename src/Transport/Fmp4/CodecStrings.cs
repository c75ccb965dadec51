using System.Globalization;
using System.Text;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Fmp4;

/// <summary>
/// RFC 6381 <c>codecs</c> parameters for tracks, as Media Source Extensions want them in
/// <c>MediaSource.isTypeSupported</c> and <c>addSourceBuffer</c>.
/// </summary>
public static class CodecStrings
{
    /// <summary>
    /// <c>avc1.PPCCLL</c> from an H.264 SPS NAL unit (ISO/IEC 14496-15 Annex E): profile_idc,
    /// the constraint-flags byte and level_idc, each as two hex digits.
    /// </summary>
    /// <exception cref="FormatException">The SPS is shorter than its first four bytes.</exception>
    internal static string Avc(ReadOnlySpan<byte> sps)
    {
        if (sps.Length < 4) throw new FormatException("H.264 SPS too short for profile and level");
        return string.Create(CultureInfo.InvariantCulture, $"avc1.{sps[1]:x2}{sps[2]:x2}{sps[3]:x2}");
    }

    /// <summary>
    /// <c>hvc1.P.C.TL.B…</c> from an H.265 SPS NAL unit (ISO/IEC 14496-15 Annex E.3): profile space
    /// and profile, compatibility flags bit-reversed in hex, tier and level, then the constraint bytes
    /// without trailing zero bytes.
    /// </summary>
    /// <exception cref="FormatException">The SPS is too short to hold its profile_tier_level.</exception>
    internal static string Hevc(ReadOnlySpan<byte> sps)
    {
        var ptl = HevcProfileTierLevel.FromSps(sps);
        var sb = new StringBuilder("hvc1.");
        if (ptl.ProfileSpace > 0) sb.Append((char)('A' + ptl.ProfileSpace - 1));
        sb.Append(ptl.ProfileIdc.ToString(CultureInfo.InvariantCulture)).Append('.');
        // The 32 compatibility flags are written in reverse bit order (general_profile_compatibility_flag[31] first).
        uint reversed = 0;
        for (var i = 0; i < 32; i++)
            if ((ptl.CompatibilityFlags & (1u << i)) != 0) reversed |= 1u << (31 - i);
        sb.Append(reversed.ToString("X", CultureInfo.InvariantCulture)).Append('.');
        sb.Append(ptl.TierFlag ? 'H' : 'L').Append(ptl.LevelIdc.ToString(CultureInfo.InvariantCulture));
        var last = 5;
        while (last >= 0 && ptl.ConstraintFlags[last] == 0) last--;
        for (var i = 0; i <= last; i++) sb.Append('.').Append(ptl.ConstraintFlags[i].ToString("X2", CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>
    /// <c>mp4a.40.N</c> from an AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), where N is the
    /// audioObjectType (2 for AAC-LC).
    /// </summary>
    /// <exception cref="FormatException">The AudioSpecificConfig is empty.</exception>
    public static string Aac(ReadOnlySpan<byte> audioSpecificConfig)
    {
        if (audioSpecificConfig.Length < 1) throw new FormatException("empty AudioSpecificConfig");
        var objectType = audioSpecificConfig[0] >> 3;
        if (objectType == 31 && audioSpecificConfig.Length >= 2)
            objectType = 32 + (((audioSpecificConfig[0] & 0x07) << 3) | (audioSpecificConfig[1] >> 5));
        return string.Create(CultureInfo.InvariantCulture, $"mp4a.40.{objectType}");
    }

    /// <summary>
    /// The codecs parameter for one track; null for codecs that fMP4 in a browser cannot carry (G.711)
    /// and for tracks whose configuration is missing or malformed (no SPS, an SPS too short to read).
    /// </summary>
    public static string? For(TrackInfo track)
    {
        ArgumentNullException.ThrowIfNull(track);
        try
        {
            return track.Codec switch
            {
                MediaCodec.H264 when FindAvcSps(track) is { } sps => Avc(sps.Span),
                MediaCodec.H265 when FindHevcSps(track) is { } sps => Hevc(sps.Span),
                MediaCodec.Aac when track.AudioSpecificConfig.Length > 0 => Aac(track.AudioSpecificConfig.Span),
                _ => null,
            };
        }
        catch (FormatException)
        {
            return null;
        }
    }

    // Parameter sets are matched by NAL unit type, not position: a source may list them in any order.
    internal static ReadOnlyMemory<byte>? FindAvcSps(TrackInfo track) => FindNal(track, p => (p[0] & 0x1F) == 7);

    internal static ReadOnlyMemory<byte>? FindAvcPps(TrackInfo track) => FindNal(track, p => (p[0] & 0x1F) == 8);

    internal static ReadOnlyMemory<byte>? FindHevcSps(TrackInfo track) => FindNal(track, p => ((p[0] >> 1) & 0x3F) == 33);

    private static ReadOnlyMemory<byte>? FindNal(TrackInfo track, Func<ReadOnlySpan<byte>, bool> match)
    {
        foreach (var ps in track.ParameterSets)
            if (ps.Length > 2 && match(ps.Span)) return ps;
        return null;
    }
}

/// <summary>The general profile_tier_level of an H.265 SPS (ITU-T H.265 §7.3.3), as hvcC and codec strings need it.</summary>
internal sealed record HevcProfileTierLevel(
    int ProfileSpace, bool TierFlag, int ProfileIdc, uint CompatibilityFlags, byte[] ConstraintFlags, byte LevelIdc, int MaxSubLayersMinus1, bool TemporalIdNesting)
{
    public static HevcProfileTierLevel FromSps(ReadOnlySpan<byte> sps)
    {
        // 2-byte NAL header, then sps_video_parameter_set_id(4) sps_max_sub_layers_minus1(3)
        // sps_temporal_id_nesting_flag(1), then 12 bytes of general profile/tier/level.
        Span<byte> rbsp = stackalloc byte[16];
        var n = Unescape(sps[Math.Min(2, sps.Length)..], rbsp);
        if (sps.Length < 2 || n < 13) throw new FormatException("H.265 SPS too short for profile_tier_level");
        var b = rbsp[1];
        return new HevcProfileTierLevel(
            ProfileSpace: b >> 6,
            TierFlag: (b & 0x20) != 0,
            ProfileIdc: b & 0x1F,
            CompatibilityFlags: (uint)(rbsp[2] << 24 | rbsp[3] << 16 | rbsp[4] << 8 | rbsp[5]),
            ConstraintFlags: rbsp[6..12].ToArray(),
            LevelIdc: rbsp[12],
            MaxSubLayersMinus1: (rbsp[0] >> 1) & 0x07,
            TemporalIdNesting: (rbsp[0] & 1) != 0);
    }

    // Removes emulation_prevention_three_byte (H.265 §7.4.2): 00 00 03 -> 00 00. Fills at most output.Length bytes.
    private static int Unescape(ReadOnlySpan<byte> ebsp, Span<byte> output)
    {
        int n = 0, zeros = 0;
        foreach (var x in ebsp)
        {
            if (n == output.Length) break;
            if (zeros >= 2 && x == 3) { zeros = 0; continue; }
            zeros = x == 0 ? zeros + 1 : 0;
            output[n++] = x;
        }
        return n;
    }
}
