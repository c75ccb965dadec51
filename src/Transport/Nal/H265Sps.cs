using Pinhole.Transport.Media;

namespace Pinhole.Transport.Nal;

/// <summary>The fields Pinhole needs from an H.265 sequence parameter set (ITU-T H.265 §7.3.2.2).</summary>
/// <param name="GeneralProfileIdc">general_profile_idc.</param>
/// <param name="GeneralLevelIdc">general_level_idc.</param>
/// <param name="Width">Picture width after the conformance window, in pixels.</param>
/// <param name="Height">Picture height after the conformance window, in pixels.</param>
internal sealed record H265Sps(int GeneralProfileIdc, int GeneralLevelIdc, int Width, int Height)
{
    /// <summary><c>sps_max_num_reorder_pics</c> of the highest sub-layer (§7.4.3.2.1): how many pictures
    /// may precede a picture in decoding order and follow it in output order (0 without B-frames);
    /// null when the SPS ends before it.</summary>
    public int? MaxNumReorderPics { get; init; }

    /// <summary>Parses an SPS NAL unit (with its two-byte NAL header, without start code).</summary>
    public static H265Sps Parse(ReadOnlySpan<byte> nal)
    {
        if (nal.Length < 4 || ((nal[0] >> 1) & 0x3f) != 33) throw new MediaFormatException("not an H.265 SPS NAL unit");
        var r = new BitReader(Rbsp.Unescape(nal[2..]));
        r.Skip(4); // sps_video_parameter_set_id
        var maxSubLayersMinus1 = (int)r.ReadBits(3);
        if (maxSubLayersMinus1 > 6) throw new MediaFormatException("H.265 SPS sps_max_sub_layers_minus1 > 6");
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
        if (width == 0 || height == 0) throw new MediaFormatException("H.265 SPS picture size is zero");
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
            if (width <= 0 || height <= 0) throw new MediaFormatException("H.265 SPS conformance window larger than the picture");
        }
        int? reorder = null;
        try
        {
            r.ReadUe(8, "bit_depth_luma_minus8");
            r.ReadUe(8, "bit_depth_chroma_minus8");
            r.ReadUe(12, "log2_max_pic_order_cnt_lsb_minus4");
            // With sps_sub_layer_ordering_info_present_flag one triple per sub-layer, else only the
            // highest one's; the value that applies to the whole stream is the highest sub-layer's.
            var first = r.ReadFlag() ? 0 : maxSubLayersMinus1;
            for (var i = first; i <= maxSubLayersMinus1; i++)
            {
                r.ReadUe(15, "sps_max_dec_pic_buffering_minus1");
                reorder = r.ReadUe(15, "sps_max_num_reorder_pics");
                r.ReadUe(); // sps_max_latency_increase_plus1
            }
        }
        catch (MediaFormatException)
        {
            // A cut SPS loses only the reorder depth; the picture size above is sound.
            reorder = null;
        }
        return new H265Sps(profile, level, width, height) { MaxNumReorderPics = reorder };
    }
}
