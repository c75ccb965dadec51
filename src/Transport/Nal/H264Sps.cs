using Pinhole.Transport.Media;

namespace Pinhole.Transport.Nal;

/// <summary>The fields Pinhole needs from an H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1).</summary>
/// <param name="ProfileIdc">profile_idc.</param>
/// <param name="ConstraintFlags">constraint_set flags byte.</param>
/// <param name="LevelIdc">level_idc.</param>
/// <param name="Width">Cropped picture width in pixels.</param>
/// <param name="Height">Cropped picture height in pixels.</param>
public sealed record H264Sps(int ProfileIdc, int ConstraintFlags, int LevelIdc, int Width, int Height)
{
    /// <summary>VUI <c>max_num_reorder_frames</c> (§E.2.1): how many frames may precede a frame in decoding
    /// order and follow it in output order (0 without B-frames); null when the SPS has no
    /// <c>bitstream_restriction</c> (or its VUI is unreadable).</summary>
    public int? MaxNumReorderFrames { get; init; }

    /// <summary>
    /// The reorder depth to assume: <see cref="MaxNumReorderFrames"/> when given, else 0 for the
    /// profiles without B-frames (Baseline, and the intra profiles with constraint_set3_flag, for
    /// which §E.2.1 infers 0), else null (unknown).
    /// </summary>
    public int? ReorderDepth => MaxNumReorderFrames
        ?? (ProfileIdc == 66 || (ProfileIdc is 44 or 86 or 100 or 110 or 122 or 244 && (ConstraintFlags & 0x10) != 0) ? 0 : null);

    /// <summary>Parses an SPS NAL unit (with its one-byte NAL header, without start code).</summary>
    public static H264Sps Parse(ReadOnlySpan<byte> nal)
    {
        if (nal.Length < 4 || (nal[0] & 0x1f) != 7) throw new MediaFormatException("not an H.264 SPS NAL unit");
        var r = new BitReader(Rbsp.Unescape(nal[1..]));
        var profile = (int)r.ReadBits(8);
        var constraints = (int)r.ReadBits(8);
        var level = (int)r.ReadBits(8);
        r.ReadUe(31, "seq_parameter_set_id");
        var chromaFormat = 1;
        var separateColourPlane = false;
        if (profile is 100 or 110 or 122 or 244 or 44 or 83 or 86 or 118 or 128 or 138 or 139 or 134 or 135)
        {
            chromaFormat = r.ReadUe(3, "chroma_format_idc");
            if (chromaFormat == 3) separateColourPlane = r.ReadFlag();
            r.ReadUe(14, "bit_depth_luma_minus8");
            r.ReadUe(14, "bit_depth_chroma_minus8");
            r.ReadFlag(); // qpprime_y_zero_transform_bypass_flag
            if (r.ReadFlag()) // seq_scaling_matrix_present_flag
            {
                var lists = chromaFormat != 3 ? 8 : 12;
                for (var i = 0; i < lists; i++)
                    if (r.ReadFlag()) SkipScalingList(ref r, i < 6 ? 16 : 64);
            }
        }
        r.ReadUe(12, "log2_max_frame_num_minus4");
        var pocType = r.ReadUe(2, "pic_order_cnt_type");
        if (pocType == 0)
        {
            r.ReadUe(12, "log2_max_pic_order_cnt_lsb_minus4");
        }
        else if (pocType == 1)
        {
            r.ReadFlag();
            r.ReadSe();
            r.ReadSe();
            var cycle = r.ReadUe(255, "num_ref_frames_in_pic_order_cnt_cycle");
            for (var i = 0; i < cycle; i++) r.ReadSe();
        }
        r.ReadUe(32, "max_num_ref_frames");
        r.ReadFlag(); // gaps_in_frame_num_value_allowed_flag
        var widthMbs = r.ReadUe(4095, "pic_width_in_mbs_minus1") + 1;
        var heightMapUnits = r.ReadUe(4095, "pic_height_in_map_units_minus1") + 1;
        var frameMbsOnly = r.ReadFlag();
        if (!frameMbsOnly) r.ReadFlag(); // mb_adaptive_frame_field_flag
        r.ReadFlag(); // direct_8x8_inference_flag
        var width = widthMbs * 16;
        var height = (frameMbsOnly ? 1 : 2) * heightMapUnits * 16;
        if (r.ReadFlag()) // frame_cropping_flag (§7.4.2.1.1, crop units per Table 6-1)
        {
            var left = r.ReadUe(8192, "frame_crop_left_offset");
            var right = r.ReadUe(8192, "frame_crop_right_offset");
            var top = r.ReadUe(8192, "frame_crop_top_offset");
            var bottom = r.ReadUe(8192, "frame_crop_bottom_offset");
            var arrayType = separateColourPlane ? 0 : chromaFormat;
            int cropX, cropY;
            if (arrayType == 0)
            {
                cropX = 1;
                cropY = frameMbsOnly ? 1 : 2;
            }
            else
            {
                var subWidthC = chromaFormat == 3 ? 1 : 2;
                var subHeightC = chromaFormat == 1 ? 2 : 1;
                cropX = subWidthC;
                cropY = subHeightC * (frameMbsOnly ? 1 : 2);
            }
            width -= cropX * (left + right);
            height -= cropY * (top + bottom);
            if (width <= 0 || height <= 0) throw new MediaFormatException("H.264 SPS cropping larger than the picture");
        }
        int? reorder = null;
        try
        {
            if (r.ReadFlag()) reorder = ReadVuiMaxNumReorderFrames(ref r); // vui_parameters_present_flag
        }
        catch (MediaFormatException)
        {
            // A cut or odd VUI loses only the reorder depth; the picture size above is sound.
        }
        return new H264Sps(profile, constraints, level, width, height) { MaxNumReorderFrames = reorder };
    }

    // vui_parameters() up to max_num_reorder_frames (§E.1.1); null without bitstream_restriction.
    private static int? ReadVuiMaxNumReorderFrames(ref BitReader r)
    {
        if (r.ReadFlag()) // aspect_ratio_info_present_flag
        {
            if (r.ReadBits(8) == 255) r.Skip(32); // aspect_ratio_idc Extended_SAR: sar_width, sar_height
        }
        if (r.ReadFlag()) r.Skip(1); // overscan_info_present_flag, overscan_appropriate_flag
        if (r.ReadFlag()) // video_signal_type_present_flag
        {
            r.Skip(3 + 1); // video_format, video_full_range_flag
            if (r.ReadFlag()) r.Skip(24); // colour_description_present_flag: primaries, transfer, matrix
        }
        if (r.ReadFlag()) // chroma_loc_info_present_flag
        {
            r.ReadUe(5, "chroma_sample_loc_type_top_field");
            r.ReadUe(5, "chroma_sample_loc_type_bottom_field");
        }
        if (r.ReadFlag()) r.Skip(32 + 32 + 1); // timing_info_present_flag: num_units_in_tick, time_scale, fixed_frame_rate_flag
        var nalHrd = r.ReadFlag();
        if (nalHrd) SkipHrdParameters(ref r);
        var vclHrd = r.ReadFlag();
        if (vclHrd) SkipHrdParameters(ref r);
        if (nalHrd || vclHrd) r.Skip(1); // low_delay_hrd_flag
        r.Skip(1); // pic_struct_present_flag
        if (!r.ReadFlag()) return null; // bitstream_restriction_flag
        r.Skip(1); // motion_vectors_over_pic_boundaries_flag
        r.ReadUe(16, "max_bytes_per_pic_denom");
        r.ReadUe(16, "max_bits_per_mb_denom");
        r.ReadUe(16, "log2_max_mv_length_horizontal");
        r.ReadUe(16, "log2_max_mv_length_vertical");
        return r.ReadUe(16, "max_num_reorder_frames");
    }

    // hrd_parameters() (§E.1.2).
    private static void SkipHrdParameters(ref BitReader r)
    {
        var cpbCount = r.ReadUe(31, "cpb_cnt_minus1") + 1;
        r.Skip(4 + 4); // bit_rate_scale, cpb_size_scale
        for (var i = 0; i < cpbCount; i++)
        {
            r.ReadUe(); // bit_rate_value_minus1
            r.ReadUe(); // cpb_size_value_minus1
            r.Skip(1); // cbr_flag
        }
        r.Skip(5 + 5 + 5 + 5); // initial_cpb_removal_delay_length_minus1, cpb_removal_delay_length_minus1, dpb_output_delay_length_minus1, time_offset_length
    }

    private static void SkipScalingList(ref BitReader r, int size)
    {
        // H.264 §7.3.2.1.1.1
        int last = 8, next = 8;
        for (var j = 0; j < size; j++)
        {
            if (next != 0) next = (last + r.ReadSe() + 256) % 256;
            last = next == 0 ? last : next;
        }
    }
}
