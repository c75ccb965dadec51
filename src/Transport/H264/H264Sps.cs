using Pinhole.Transport.Rtsp;

namespace Pinhole.Transport.H264;

/// <summary>The fields Pinhole needs from an H.264 sequence parameter set (ITU-T H.264 §7.3.2.1.1).</summary>
/// <param name="ProfileIdc">profile_idc.</param>
/// <param name="ConstraintFlags">constraint_set flags byte.</param>
/// <param name="LevelIdc">level_idc.</param>
/// <param name="Width">Cropped picture width in pixels.</param>
/// <param name="Height">Cropped picture height in pixels.</param>
public sealed record H264Sps(int ProfileIdc, int ConstraintFlags, int LevelIdc, int Width, int Height)
{
    /// <summary>Parses an SPS NAL unit (with its one-byte NAL header, without start code).</summary>
    public static H264Sps Parse(ReadOnlySpan<byte> nal)
    {
        if (nal.Length < 4 || (nal[0] & 0x1f) != 7) throw new RtspProtocolException("not an H.264 SPS NAL unit");
        var r = new RbspReader(RbspReader.Unescape(nal[1..]));
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
            if (width <= 0 || height <= 0) throw new RtspProtocolException("H.264 SPS cropping larger than the picture");
        }
        return new H264Sps(profile, constraints, level, width, height);
    }

    private static void SkipScalingList(ref RbspReader r, int size)
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
