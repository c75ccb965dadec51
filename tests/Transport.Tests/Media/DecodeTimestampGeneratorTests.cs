using Pinhole.Transport.H264;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Media;

/// <summary>Issue #21: B-frames need a DTS apart from the PTS, with no added latency.</summary>
public class DecodeTimestampGeneratorTests
{
    private const long Frame = 3600;

    // PTS in decode order, in frames, of `ffmpeg -f lavfi -i testsrc=size=320x240:rate=25 -frames:v 30
    // -c:v libx264 -preset ultrafast -g 25 -bf 2 bf.mp4` (ffprobe -show_entries packet=pts: 512 ticks a
    // frame); its SPS says max_num_reorder_frames = 2 (b_pyramid), and ffmpeg's own DTS trail by 2 frames.
    private static readonly int[] X264Bf2 = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11, 15, 13, 14, 18, 16, 17, 21, 19, 20, 24, 22, 23, 25, 28, 26, 27, 29];

    private static List<long> Dts(IEnumerable<long> pts, int depth, bool guessed = false, Func<int, bool>? keyframe = null)
    {
        var g = new DecodeTimestampGenerator(90000);
        g.SetReorderDepth(depth, guessed);
        return pts.Select((p, i) => g.Next(p, keyframe?.Invoke(i) ?? i == 0)).ToList();
    }

    private static void AssertValid(IReadOnlyList<long> pts, IReadOnlyList<long> dts)
    {
        for (var i = 0; i < pts.Count; i++)
        {
            Assert.True(dts[i] <= pts[i], $"frame {i}: DTS {dts[i]} > PTS {pts[i]}");
            if (i > 0) Assert.True(dts[i] > dts[i - 1], $"frame {i}: DTS {dts[i]} not above {dts[i - 1]}");
            // Decoded before every frame shown after it: no later frame has a PTS below this DTS.
            for (var j = i + 1; j < pts.Count; j++) Assert.True(pts[j] >= dts[i], $"frame {j} PTS {pts[j]} < DTS {dts[i]} of frame {i}");
        }
    }

    [Fact]
    public void X264_bframes_2_give_strictly_increasing_DTS_never_above_PTS_like_ffmpeg()
    {
        var pts = X264Bf2.Select(f => 100_000 + f * Frame).ToList();
        var dts = Dts(pts, depth: 2);
        AssertValid(pts, dts);
        // What ffmpeg writes into the mp4 for the same stream: two frames behind, one frame apart.
        Assert.Equal(Enumerable.Range(0, pts.Count).Select(i => 100_000 + (i - 2) * Frame), dts);
    }

    [Fact]
    public void GStreamer_bframes_2_without_pyramid_with_its_SPS_depth()
    {
        // rtsp-camera.py --bframes 2 (x264enc bframes=2): I0 P3 B1 B2 P6 B4 B5 …, RTP in this order.
        int[] frames = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8, 12, 10, 11];
        var pts = frames.Select(f => f * Frame).ToList();
        var sps = H264Sps.Parse(Convert.FromHexString("674d400deca0a0fd80b5060606a5000003000100000300328f142996"));
        Assert.Equal(2, sps.MaxNumReorderFrames);
        var dts = Dts(pts, sps.ReorderDepth!.Value);
        AssertValid(pts, dts);
        Assert.Equal(Enumerable.Range(0, pts.Count).Select(i => (i - 2) * Frame), dts);
    }

    [Fact]
    public void Without_B_frames_DTS_equals_PTS_exactly_even_with_jitter_and_gaps()
    {
        long[] pts = [5000, 8600, 12201, 15799, 23000, 26600, 26600, 30200];
        Assert.Equal(pts, Dts(pts, depth: 0));
    }

    [Fact]
    public void A_guessed_depth_gives_way_to_DTS_equal_PTS_after_a_GOP_without_reordering()
    {
        var pts = Enumerable.Range(0, 60).Select(i => i * Frame).ToList();
        var dts = Dts(pts, depth: 2, guessed: true, keyframe: i => i % 25 == 0);
        AssertValid(pts, dts);
        Assert.True(dts[10] < pts[10], "still the guess inside the first GOP");
        // From the second keyframe on (a whole GOP showed no B-frames) DTS = PTS.
        Assert.Equal(pts.Skip(25), dts.Skip(25));
    }

    [Fact]
    public void A_deeper_reorder_than_the_SPS_said_grows_the_depth_and_DTS_stays_increasing()
    {
        // Baseline-looking stream (depth 0) that has B-frames after all.
        var pts = X264Bf2.Select(f => f * Frame).ToList();
        var g = new DecodeTimestampGenerator(90000);
        var dts = pts.Select((p, i) => g.Next(p, i == 0)).ToList();
        Assert.Equal(1, g.ReorderDepth);
        for (var i = 1; i < dts.Count; i++) Assert.True(dts[i] > dts[i - 1]);
        // Once it caught up, DTS never passes PTS again.
        for (var i = 6; i < dts.Count; i++) Assert.True(dts[i] <= pts[i], $"frame {i}");
    }

    [Fact]
    public void A_clock_restart_starts_over_instead_of_holding_DTS_above_the_new_PTS()
    {
        var pts = X264Bf2.Take(10).Select(f => 50_000_000 + f * Frame).Concat(X264Bf2.Take(10).Select(f => 1000 + f * Frame)).ToList();
        var dts = Dts(pts, depth: 2);
        AssertValid(pts.Take(10).ToList(), dts.Take(10).ToList());
        AssertValid(pts.Skip(10).ToList(), dts.Skip(10).ToList());
    }

    [Fact]
    public void SPS_reorder_depths_from_real_encoders()
    {
        // x264 (ffmpeg) high, -bf 0 and default B-frames; GStreamer x264 constrained baseline; an SPS without VUI.
        Assert.Equal(0, H264Sps.Parse(Convert.FromHexString("6742c01eda0280bfe5c05a83030352800000030080000019478b1750")).MaxNumReorderFrames);
        Assert.Equal(2, H264Sps.Parse(Convert.FromHexString("67640028acd940780227e5c044000003000400000300c83c60c658")).MaxNumReorderFrames);
        Assert.Equal(2, H264Sps.Parse(Convert.FromHexString("67f4000d919b28283f6022000003000200000300641e28532c")).MaxNumReorderFrames);
        var noVui = H264Sps.Parse([0x67, 0x4d, 0x40, 0x1e, 0xf4, 0x05, 0x01, 0x7c, 0x80]);
        Assert.Equal((640, 368, (int?)null, (int?)null), (noVui.Width, noVui.Height, noVui.MaxNumReorderFrames, noVui.ReorderDepth));
        var baselineNoVui = noVui with { ProfileIdc = 66 };
        Assert.Equal(0, baselineNoVui.ReorderDepth);
        // x265: zerolatency (the capture) and bframes=3.
        Assert.Equal(0, H265Sps.Parse(Convert.FromHexString("42010101600000030090000003000003003fa005020171f2e5ba4a4c2fff000100016a0c0c0c08000003000800000300c840")).MaxNumReorderPics);
        Assert.Equal(2, H265Sps.Parse(Convert.FromHexString("42010101600000030090000003000003003ca00a080f16595964932bc05a020000030002000003003210")).MaxNumReorderPics);
    }

    [Fact]
    public void Depacketized_B_frame_stream_gets_DTS_from_its_SPS_and_keeps_PTS_from_RTP()
    {
        var sps = Convert.FromHexString("674d400deca0a0fd80b5060606a5000003000100000300328f142996");
        byte[] pps = [0x68, 0xce, 0x3c, 0x80];
        var dep = new H264Depacketizer(0, [sps, pps]);
        var output = new CollectingOutput();
        int[] frames = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8];
        ushort seq = 0;
        foreach (var f in frames)
            dep.Push(new RtpPacket { SequenceNumber = seq++, Timestamp = (uint)(f * Frame), Marker = true, PayloadType = 96, Payload = new byte[] { f == 0 ? (byte)0x65 : (byte)0x41, 0x88, 0x80 } }, output);
        var units = output.Units;
        Assert.Equal(frames.Take(units.Count).Select(f => f * Frame), units.Select(u => u.Pts));
        Assert.True(units.Count >= 8);
        AssertValid(units.Select(u => u.Pts).ToList(), units.Select(u => u.Dts).ToList());
        Assert.Equal(Enumerable.Range(0, units.Count).Select(i => (i - 2) * Frame), units.Select(u => u.Dts));
    }
}
