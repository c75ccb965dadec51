using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Pinhole.Testing;
using Pinhole.Testing.Media;
using Pinhole.Transport.Fmp4;
using Pinhole.Transport.Media;

namespace Pinhole.Transport.Tests.Fmp4;

public class Fmp4MuxerTests
{
    private static readonly byte[] Sps = [0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50];
    private static readonly byte[] Pps = [0x68, 0xeb, 0xe3, 0xcb];
    private static readonly TrackInfo Video = new() { Codec = MediaCodec.H264, ClockRate = 90_000, ParameterSets = [Sps, Pps], Width = 1280, Height = 720 };
    private static readonly TrackInfo Audio = new() { Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 1, AudioSpecificConfig = new byte[] { 0x11, 0x88 } };

    private static AccessUnit Frame(long dts, bool key, long? pts = null, int track = 0) =>
        new(track, pts ?? dts, dts, key, new byte[] { 0, 0, 0, 2, key ? (byte)0x65 : (byte)0x41, (byte)dts });

    [Fact]
    public void Codec_strings_follow_rfc6381()
    {
        Assert.Equal("avc1.64001f", CodecStrings.Avc(Sps));
        Assert.Equal("mp4a.40.2", CodecStrings.Aac([0x11, 0x88]));
        Assert.Equal("mp4a.40.5", CodecStrings.Aac([0x2B, 0x92]));
        var muxer = new Fmp4Muxer([Video, Audio]);
        Assert.Equal("avc1.64001f,mp4a.40.2", muxer.Codecs);
        Assert.Equal("video/mp4; codecs=\"avc1.64001f,mp4a.40.2\"", muxer.MimeType);
        Assert.Equal("audio/mp4; codecs=\"mp4a.40.2\"", new Fmp4Muxer([Audio]).MimeType);
    }

    [Fact]
    public void Init_segment_has_exact_box_sizes_and_the_required_fields()
    {
        var init = new Fmp4Muxer([Video, Audio]).CreateInitSegment();
        var boxes = BoxWalker.Walk(init);
        Assert.Equal(["ftyp", "moov"], boxes.Select(b => b.Type));
        var ftyp = boxes[0];
        Assert.Equal("isom", Encoding.ASCII.GetString(ftyp.Payload[..4]));
        Assert.Contains("iso6", Encoding.ASCII.GetString(ftyp.Payload[8..]));

        var moov = boxes[1];
        var mvhd = moov.Child("mvhd");
        Assert.Equal(0, mvhd.Version);
        Assert.Equal(108 - 8, mvhd.Payload.Length); // §8.2.2: a version 0 mvhd is 108 bytes with its header
        Assert.Equal(1000u, mvhd.U32(12));
        Assert.Equal(["trak", "trak"], moov.All("trak").Select(t => t.Type));

        var traks = moov.All("trak").ToList();
        var vtkhd = traks[0].Child("tkhd");
        Assert.Equal(3u, vtkhd.Flags);
        Assert.Equal(1u, vtkhd.U32(12));
        Assert.Equal(1280u << 16, vtkhd.U32(76));
        Assert.Equal(720u << 16, vtkhd.U32(80));
        Assert.Equal(2u, traks[1].Child("tkhd").U32(12));
        Assert.Equal(90_000u, traks[0].Find("mdia/mdhd").U32(12));
        Assert.Equal(48_000u, traks[1].Find("mdia/mdhd").U32(12));
        Assert.Equal("vide", Encoding.ASCII.GetString(traks[0].Find("mdia/hdlr").Payload[8..12]));
        Assert.Equal("soun", Encoding.ASCII.GetString(traks[1].Find("mdia/hdlr").Payload[8..12]));
        Assert.Equal(1u, traks[0].Find("mdia/minf/vmhd").Flags);
        _ = traks[1].Find("mdia/minf/smhd");
        Assert.Equal(1u, traks[0].Find("mdia/minf/dinf/dref").U32(4));
        Assert.Equal(1u, traks[0].Find("mdia/minf/dinf/dref/url ").Flags);

        var stbl = traks[0].Find("mdia/minf/stbl");
        Assert.Equal(1u, stbl.Child("stsd").U32(4));
        foreach (var empty in (string[])["stts", "stsc", "stco"]) Assert.Equal(0u, stbl.Child(empty).U32(4));
        Assert.Equal(0u, stbl.Child("stsz").U32(8));

        var avc1 = stbl.Find("stsd/avc1");
        Assert.Equal(1, avc1.U16(6)); // data_reference_index
        Assert.Equal(1280, avc1.U16(24));
        Assert.Equal(720, avc1.U16(26));
        var avcC = avc1.Child("avcC").Payload;
        Assert.Equal([1, 0x64, 0x00, 0x1f, 0xFF, 0xE1], avcC[..6].ToArray());
        Assert.Equal(Sps.Length, avcC[6] << 8 | avcC[7]);
        Assert.Equal(Sps, avcC.Slice(8, Sps.Length).ToArray());
        var afterSps = avcC[(8 + Sps.Length)..];
        Assert.Equal(1, afterSps[0]);
        Assert.Equal(Pps, afterSps.Slice(3, Pps.Length).ToArray());

        var mp4a = traks[1].Find("mdia/minf/stbl/stsd/mp4a");
        Assert.Equal(1, mp4a.U16(16)); // channelcount
        Assert.Equal(48_000u << 16, mp4a.U32(24));
        var esds = mp4a.Child("esds").Payload.ToArray();
        Assert.Equal(0x03, esds[4]); // ES_Descriptor
        Assert.Equal(esds.Length - 6, esds[5]); // its size covers the rest
        var dsi = Array.IndexOf(esds, (byte)0x05);
        Assert.Equal([0x05, 0x02, 0x11, 0x88], esds[dsi..(dsi + 4)]);

        var trex = moov.Child("mvex").All("trex").ToList();
        Assert.Equal([1u, 2u], trex.Select(t => t.U32(4)));
        Assert.All(trex, t => Assert.Equal(1u, t.U32(8)));
    }

    [Fact]
    public void Each_fragment_holds_one_frame_with_decode_time_duration_size_flags_and_data_offset()
    {
        var muxer = new Fmp4Muxer([Video]);
        var frames = Enumerable.Range(0, 10).Select(i => Frame(1_000_000 + i * 3000, key: i % 5 == 0)).ToList();
        for (var i = 0; i < frames.Count; i++)
        {
            var bytes = muxer.CreateFragment(frames[i])!;
            var boxes = BoxWalker.Walk(bytes);
            Assert.Equal(["moof", "mdat"], boxes.Select(b => b.Type));
            var moof = boxes[0];
            Assert.Equal((uint)i + 1, moof.Child("mfhd").U32(4));
            var traf = moof.Child("traf");
            var tfhd = traf.Child("tfhd");
            Assert.Equal(0x020000u, tfhd.Flags);
            Assert.Equal(1u, tfhd.U32(4));
            var tfdt = traf.Child("tfdt");
            Assert.Equal(1, tfdt.Version);
            Assert.Equal((ulong)(i * 3000), tfdt.U64(4)); // rebased to start at 0
            var trun = traf.Child("trun");
            Assert.Equal(0x000701u, trun.Flags); // no composition offsets when PTS == DTS
            Assert.Equal(1u, trun.U32(4));
            Assert.Equal((uint)moof.Size + 8, trun.U32(8)); // data_offset from the moof start to the mdat payload
            Assert.Equal(i == 0 ? 3600u : 3000u, trun.U32(12)); // default before an interval was seen, then the interval
            Assert.Equal((uint)frames[i].Data.Length, trun.U32(16));
            Assert.Equal(frames[i].IsKeyframe ? 0x02000000u : 0x01010000u, trun.U32(20));
            Assert.Equal(frames[i].Data.ToArray(), boxes[1].Payload.ToArray());
        }
    }

    [Fact]
    public void Composition_offsets_are_written_when_pts_differs_from_dts_and_signed_when_negative()
    {
        var muxer = new Fmp4Muxer([Video]);
        var trun = BoxWalker.Walk(muxer.CreateFragment(Frame(0, true, pts: 6000))!)[0].Find("traf/trun");
        Assert.Equal(0x000F01u, trun.Flags);
        Assert.Equal(0, trun.Version);
        Assert.Equal(6000u, trun.U32(24));

        trun = BoxWalker.Walk(muxer.CreateFragment(Frame(3000, false, pts: 0))!)[0].Find("traf/trun");
        Assert.Equal(1, trun.Version);
        Assert.Equal(-3000, (int)trun.U32(24));
    }

    [Fact]
    public void A_batch_fragment_takes_durations_from_the_next_frames_dts()
    {
        var muxer = new Fmp4Muxer([Video]);
        AccessUnit[] batch = [Frame(0, true), Frame(3000, false), Frame(7000, false)];
        var boxes = BoxWalker.Walk(muxer.CreateFragment(batch)!);
        var trun = boxes[0].Find("traf/trun");
        Assert.Equal(3u, trun.U32(4));
        Assert.Equal(3000u, trun.U32(12));
        Assert.Equal(4000u, trun.U32(24));
        Assert.Equal(4000u, trun.U32(36)); // the last one: the latest interval
        Assert.Equal(batch.Sum(b => b.Data.Length), boxes[1].Payload.Length);
        Assert.Throws<ArgumentException>(() => muxer.CreateFragment([Frame(0, true), Frame(10, true, track: 1)]));
    }

    [Fact]
    public void A_source_clock_that_jumps_back_continues_the_timeline_instead_of_rewinding()
    {
        var muxer = new Fmp4Muxer([Video]);
        ulong Tfdt(AccessUnit u) => BoxWalker.Walk(muxer.CreateFragment(u)!)[0].Find("traf/tfdt").U64(4);
        Assert.Equal(0ul, Tfdt(Frame(500_000, true)));
        Assert.Equal(3000ul, Tfdt(Frame(503_000, false)));
        Assert.Equal(6000ul, Tfdt(Frame(10, true))); // restarted source: carries on one frame later
        Assert.Equal(9000ul, Tfdt(Frame(3010, false)));
        Assert.Equal(12000ul, Tfdt(Frame(3010 + 90_000 * 3600L, false))); // an hour's jump forward too
    }

    [Fact]
    public void A_track_that_starts_later_is_placed_at_the_current_position_of_the_first()
    {
        var muxer = new Fmp4Muxer([Video, Audio]);
        for (var i = 0; i < 25; i++) muxer.CreateFragment(Frame(777 + i * 3600, i == 0));
        var audio = BoxWalker.Walk(muxer.CreateFragment(new AccessUnit(1, 123_456, 123_456, true, new byte[] { 1, 2, 3 }))!)[0];
        Assert.Equal(2u, audio.Find("traf/tfhd").U32(4));
        // 25 frames of 1/25 s: the audio starts at 1 s, i.e. 48 000 in its own clock.
        Assert.Equal(48_000ul, audio.Find("traf/tfdt").U64(4));
        Assert.Equal(1024u, audio.Find("traf/trun").U32(12));
        Assert.Equal(0x02000000u, audio.Find("traf/trun").U32(20));
    }

    [Fact]
    public void Tracks_mse_cannot_take_are_left_out_and_a_stream_of_only_those_is_refused()
    {
        var alaw = new TrackInfo { Codec = MediaCodec.PcmAlaw, ClockRate = 8000, SampleRate = 8000, Channels = 1 };
        var muxer = new Fmp4Muxer([alaw, Video]);
        Assert.False(muxer.IsMuxed(0));
        Assert.True(muxer.IsMuxed(1));
        Assert.False(muxer.IsMuxed(7));
        Assert.Null(muxer.CreateFragment(new AccessUnit(0, 0, 0, true, new byte[] { 1 })));
        Assert.Equal(1u, BoxWalker.Walk(muxer.CreateFragment(Frame(0, true, track: 1))!)[0].Find("traf/tfhd").U32(4));
        Assert.Throws<NotSupportedException>(() => new Fmp4Muxer([alaw]));
        Assert.False(Fmp4Muxer.CanMux(Video with { ParameterSets = [] }));
    }

    [Fact]
    public void Missing_or_malformed_parameter_sets_make_a_track_unmuxable_instead_of_throwing()
    {
        Assert.False(Fmp4Muxer.CanMux(Video with { ParameterSets = [Pps] }));
        Assert.False(Fmp4Muxer.CanMux(Video with { ParameterSets = [Sps] }));
        Assert.False(Fmp4Muxer.CanMux(Video with { ParameterSets = [new byte[] { 0x67, 0x64 }, Pps] }));
        Assert.True(Fmp4Muxer.CanMux(Video with { ParameterSets = [Pps, Sps] })); // any order
        Assert.Equal("avc1.64001f", new Fmp4Muxer([Video with { ParameterSets = [Pps, Sps] }]).Codecs);
        var shortHevc = new TrackInfo { Codec = MediaCodec.H265, ClockRate = 90_000, ParameterSets = [new byte[] { 0x42, 0x01, 0x01, 0x01 }] };
        Assert.Null(CodecStrings.For(shortHevc));
        Assert.False(Fmp4Muxer.CanMux(shortHevc));
        Assert.False(Fmp4Muxer.CanMux(Audio with { AudioSpecificConfig = new byte[] { 0x11 } }));
        Assert.False(Fmp4Muxer.CanMux(Video with { ClockRate = 0 }));
        Assert.Throws<FormatException>(() => CodecStrings.Avc([0x67, 0x64]));
    }

    [RequiresFact(Needs.Ffmpeg)]
    public void Ffprobe_reads_real_h264_and_aac_muxed_one_frame_per_fragment()
    {
        var clip = TestClips.H264(seconds: 4, withAudio: true);
        var audioFrames = clip.Units.Count(u => u.Track == 1);
        Assert.Equal(100, clip.Video.Count());
        var probe = MuxAndProbe(clip, out var fragments);
        Assert.Equal(clip.Units.Count, fragments);

        var streams = probe.GetProperty("streams").EnumerateArray().ToList();
        var video = streams.Single(s => s.GetProperty("codec_type").GetString() == "video");
        Assert.Equal("h264", video.GetProperty("codec_name").GetString());
        Assert.Equal(640, video.GetProperty("width").GetInt32());
        Assert.Equal(360, video.GetProperty("height").GetInt32());
        Assert.Equal("100", video.GetProperty("nb_read_frames").GetString());
        Assert.Equal("25/1", video.GetProperty("avg_frame_rate").GetString());
        var audio = streams.Single(s => s.GetProperty("codec_type").GetString() == "audio");
        Assert.Equal("aac", audio.GetProperty("codec_name").GetString());
        Assert.Equal("48000", audio.GetProperty("sample_rate").GetString());
        Assert.Equal(audioFrames.ToString(System.Globalization.CultureInfo.InvariantCulture), audio.GetProperty("nb_read_frames").GetString());
    }

    [RequiresFact(Needs.Ffmpeg)]
    public void Ffprobe_reads_real_h265_muxed_as_hvc1()
    {
        var clip = TestClips.H265(seconds: 2);
        var codec = CodecStrings.For(clip.Tracks[0])!;
        Assert.StartsWith("hvc1.1.6.L", codec, StringComparison.Ordinal); // Main profile, compatibility flags 0x6 reversed
        var probe = MuxAndProbe(clip, out _);
        var video = probe.GetProperty("streams")[0];
        Assert.Equal("hevc", video.GetProperty("codec_name").GetString());
        Assert.Equal("hvc1", video.GetProperty("codec_tag_string").GetString());
        Assert.Equal(640, video.GetProperty("width").GetInt32());
        Assert.Equal("50", video.GetProperty("nb_read_frames").GetString());
    }

    [RequiresFact(Needs.Ffmpeg)]
    public void Real_x264_B_frames_get_composition_offsets_and_ffprobe_shows_every_frame_in_presentation_order()
    {
        // Issue #21: ffmpeg libx264 -bf 2, sent in decode order with RTP-style PTS (what the edge receives);
        // the DTS come from the depacketizer's generator with the SPS's reorder depth.
        var dir = Directory.CreateTempSubdirectory("pinhole-bframes-");
        try
        {
            var mp4 = Path.Combine(dir.FullName, "bf.mp4");
            var h264 = Path.Combine(dir.FullName, "bf.h264");
            Run("ffmpeg", $"-nostdin -v error -f lavfi -i testsrc=size=320x240:rate=25 -frames:v 50 -c:v libx264 -preset ultrafast -g 25 -bf 2 -pix_fmt yuv420p {mp4}");
            Run("ffmpeg", $"-nostdin -v error -i {mp4} -c copy -bsf:v h264_mp4toannexb -f h264 {h264}");
            var (packets, _) = Run("ffprobe", $"-v error -select_streams v -show_entries packet=pts -of csv=p=0 {mp4}");
            var pts = packets.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => long.Parse(l.Trim(), System.Globalization.CultureInfo.InvariantCulture) * 90_000 / 12_800).ToList();
            var (track, decodeOrder) = TestClips.SplitH264(File.ReadAllBytes(h264), 320, 240, fps: 25);
            Assert.Equal(50, decodeOrder.Count);
            Assert.Equal(50, pts.Count);
            Assert.Contains(pts.Zip(pts.Skip(1)), p => p.Second < p.First); // B-frames: PTS out of order

            var sps = Pinhole.Transport.Nal.H264Sps.Parse(track.ParameterSets[0].Span);
            Assert.Equal(2, sps.MaxNumReorderFrames);
            var generator = new DecodeTimestampGenerator(90_000);
            generator.SetReorderDepth(sps.ReorderDepth!.Value, guessed: false);
            var units = decodeOrder.Select((u, i) => u with { Pts = 90_000 + pts[i], Dts = generator.Next(90_000 + pts[i], u.IsKeyframe) }).ToList();

            var muxer = new Fmp4Muxer([track]);
            using var file = new MemoryStream();
            file.Write(muxer.CreateInitSegment());
            var origin = units[0].Dts;
            foreach (var u in units)
            {
                var fragment = muxer.CreateFragment(u)!;
                var traf = BoxWalker.Walk(fragment)[0].Child("traf");
                var trun = traf.Child("trun");
                Assert.Equal((ulong)(u.Dts - origin), traf.Child("tfdt").U64(4));
                Assert.Equal(0x000F01u, trun.Flags); // composition offsets present
                Assert.Equal(0, trun.Version); // DTS <= PTS: never negative
                Assert.Equal(u.Pts - u.Dts, (long)trun.U32(24));
                file.Write(fragment);
            }
            var path = Path.Combine(dir.FullName, "out.mp4");
            File.WriteAllBytes(path, file.ToArray());
            var (frames, errors) = Run("ffprobe", $"-v error -select_streams v -show_entries frame=pts,pict_type -of csv=p=0 {path}");
            Assert.Equal("", errors);
            var shown = frames.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim().Split(',')).ToList();
            Assert.Equal(50, shown.Count);
            Assert.Contains(shown, f => f[1] == "B");
            var shownPts = shown.Select(f => long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.True(shownPts.Zip(shownPts.Skip(1)).All(p => p.Second > p.First), "frames come out in presentation order: " + string.Join(' ', shownPts));
            Assert.Equal(pts.Order().Select(p => p + 90_000 - origin), shownPts);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    // Writes init + one fragment per unit to a file, walks every box, then asks ffprobe to count the
    // frames and ffmpeg to decode all of it; any error output fails the test.
    private static JsonElement MuxAndProbe(TestClip clip, out int fragments)
    {
        var muxer = new Fmp4Muxer(clip.Tracks);
        using var file = new MemoryStream();
        file.Write(muxer.CreateInitSegment());
        fragments = 0;
        foreach (var u in clip.Units)
        {
            var f = muxer.CreateFragment(u);
            if (f is null) continue;
            file.Write(f);
            fragments++;
        }
        var bytes = file.ToArray();
        var boxes = BoxWalker.Walk(bytes);
        Assert.Equal(2 + 2 * fragments, boxes.Count);

        var path = Path.Combine(Path.GetTempPath(), $"pinhole-fmp4-{Guid.NewGuid():N}.mp4");
        File.WriteAllBytes(path, bytes);
        try
        {
            var (json, probeErrors) = Run("ffprobe", $"-v error -count_frames -show_entries stream=codec_name,codec_type,codec_tag_string,width,height,sample_rate,nb_read_frames,avg_frame_rate -of json {path}");
            Assert.Equal("", probeErrors);
            var (_, decodeErrors) = Run("ffmpeg", $"-nostdin -v error -i {path} -f null -");
            Assert.Equal("", decodeErrors);
            return JsonDocument.Parse(json).RootElement.Clone();
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static (string Out, string Err) Run(string tool, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(tool, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return (output, err.Result.Trim());
    }
}
