using Pinhole.Transport.H264;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.H265;

/// <summary>The fields Pinhole needs from an H.265 sequence parameter set (ITU-T H.265 §7.3.2.2).</summary>
/// <param name="GeneralProfileIdc">general_profile_idc.</param>
/// <param name="GeneralLevelIdc">general_level_idc.</param>
/// <param name="Width">Picture width after the conformance window, in pixels.</param>
/// <param name="Height">Picture height after the conformance window, in pixels.</param>
public sealed record H265Sps(int GeneralProfileIdc, int GeneralLevelIdc, int Width, int Height)
{
    /// <summary>Parses an SPS NAL unit (with its two-byte NAL header, without start code).</summary>
    public static H265Sps Parse(ReadOnlySpan<byte> nal)
    {
        if (nal.Length < 4 || ((nal[0] >> 1) & 0x3f) != 33) throw new RtspProtocolException("not an H.265 SPS NAL unit");
        var r = new RbspReader(RbspReader.Unescape(nal[2..]));
        r.Skip(4); // sps_video_parameter_set_id
        var maxSubLayersMinus1 = (int)r.ReadBits(3);
        if (maxSubLayersMinus1 > 6) throw new RtspProtocolException("H.265 SPS sps_max_sub_layers_minus1 > 6");
        r.Skip(1); // sps_temporal_id_nesting_flag
        // profile_tier_level(1, sps_max_sub_layers_minus1) §7.3.3
        r.Skip(2 + 1); // general_profile_space, general_tier_flag
        var profile = (int)r.ReadBits(5);
        r.Skip(32 + 4 + 43 + 1); // compatibility flags, source flags, constraint flags, inbld/reserved
        var level = (int)r.ReadBits(8);
        var subProfilePresent = new bool[maxSubLayersMinus1];
        var subLevelPresent = new bool[maxSubLayersMinus1];
        for (var i = 0; i < maxSubLayersMinus1; i++)
        {
            subProfilePresent[i] = r.ReadFlag();
            subLevelPresent[i] = r.ReadFlag();
        }
        if (maxSubLayersMinus1 > 0)
            for (var i = maxSubLayersMinus1; i < 8; i++) r.Skip(2); // reserved_zero_2bits
        for (var i = 0; i < maxSubLayersMinus1; i++)
        {
            if (subProfilePresent[i]) r.Skip(88);
            if (subLevelPresent[i]) r.Skip(8);
        }
        r.ReadUe(15, "sps_seq_parameter_set_id");
        var chromaFormat = r.ReadUe(3, "chroma_format_idc");
        var separateColourPlane = chromaFormat == 3 && r.ReadFlag();
        var width = r.ReadUe(16888, "pic_width_in_luma_samples");
        var height = r.ReadUe(16888, "pic_height_in_luma_samples");
        if (width == 0 || height == 0) throw new RtspProtocolException("H.265 SPS picture size is zero");
        if (r.ReadFlag()) // conformance_window_flag, offsets in chroma units (§7.4.3.2.1)
        {
            var left = r.ReadUe(16888, "conf_win_left_offset");
            var right = r.ReadUe(16888, "conf_win_right_offset");
            var top = r.ReadUe(16888, "conf_win_top_offset");
            var bottom = r.ReadUe(16888, "conf_win_bottom_offset");
            var arrayType = separateColourPlane ? 0 : chromaFormat;
            var subWidthC = arrayType is 1 or 2 ? 2 : 1;
            var subHeightC = arrayType == 1 ? 2 : 1;
            width -= subWidthC * (left + right);
            height -= subHeightC * (top + bottom);
            if (width <= 0 || height <= 0) throw new RtspProtocolException("H.265 SPS conformance window larger than the picture");
        }
        return new H265Sps(profile, level, width, height);
    }
}
