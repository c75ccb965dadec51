using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

/// <summary>The parsers of ffprobe/ffmpeg output, on text captured from ffmpeg 5.1.9 (Debian 12) reading rtsp-camera.py.</summary>
public class FfprobeParserTests
{
    // ffmpeg -loglevel level+verbose … -frames:v 25 -f null -, reading H.264 (multi-slice) + AAC; trimmed.
    private const string DecodeLog = """
        [h264 @ 0x558373b0cb40] [verbose] Reinit context to 320x240, pix_fmt: yuv420p
        [h264 @ 0x558373b0cb40] [info] concealing 140 DC, 140 AC, 140 MV errors in I frame
        [warning] rtsp://127.0.0.1:36851/cam: corrupt decoded frame in stream 0
        [h264 @ 0x558373b0cb40] [error] error while decoding MB 3 7, bytestream -5
        [aac @ 0x558373b0cc00] [warning] Queue input is backward in time
        [rtsp @ 0x558373a7e000] [error] RTP: PT=60: bad cseq 8c33 expected=8c31
        [verbose] Input file #0 (rtsp://127.0.0.1:36851/cam):
        [verbose]   Input stream #0:0 (video): 27 packets read (16735 bytes); 26 frames decoded;
        [verbose]   Input stream #0:1 (audio): 48 packets read (8192 bytes); 48 frames decoded (49152 samples);
        [verbose]   Total: 75 packets (24927 bytes) demuxed
        [verbose] Output file #0 (pipe:):
        [verbose]   Output stream #0:0 (video): 25 frames encoded; 25 packets muxed (11800 bytes);
        """;

    [Fact]
    public void Reads_packets_and_frames_per_input_stream_not_output_stream()
    {
        var counts = Ffprobe.ParseDecodeCounts(DecodeLog);
        Assert.Equal(2, counts.Count);
        Assert.Equal((27, 26), counts[0]);
        Assert.Equal((48, 48), counts[1]);
    }

    [Fact]
    public void Decoder_errors_are_concealment_corrupt_frames_and_decoder_error_lines_only()
    {
        var errors = Ffprobe.ParseDecoderErrors(DecodeLog, ["h264", "aac"]);
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, l => l.Contains("concealing 140 DC", StringComparison.Ordinal));
        Assert.Contains(errors, l => l.Contains("corrupt decoded frame", StringComparison.Ordinal));
        Assert.Contains(errors, l => l.Contains("error while decoding MB", StringComparison.Ordinal));
        // A demuxer error is not a decoder error, and a decoder warning is not an error.
        Assert.DoesNotContain(errors, l => l.Contains("bad cseq", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, l => l.Contains("backward in time", StringComparison.Ordinal));
    }

    [Fact]
    public void A_clean_log_has_no_decoder_errors()
    {
        const string Clean = """
            [h264 @ 0x5600] [verbose] Reinit context to 320x240, pix_fmt: yuv420p
            [verbose]   Input stream #0:0 (video): 27 packets read (18049 bytes); 26 frames decoded;
            """;
        Assert.Empty(Ffprobe.ParseDecoderErrors(Clean, ["h264"]));
    }

    [Fact]
    public void Parses_ffprobe_stream_json_with_string_sample_rates()
    {
        const string Json = """
            {"streams": [
              {"index": 0, "codec_name": "hevc", "codec_type": "video", "width": 320, "height": 240},
              {"index": 1, "codec_name": "pcm_alaw", "codec_type": "audio", "sample_rate": "8000", "channels": 1}
            ]}
            """;
        var streams = Ffprobe.ParseStreams(Json);
        Assert.Equal(2, streams.Count);
        Assert.Equal(new ProbeStream(0, "video", "hevc", 320, 240, null, null, 0, 0), streams[0]);
        Assert.Equal(new ProbeStream(1, "audio", "pcm_alaw", null, null, 8000, 1, 0, 0), streams[1]);
    }

    [Fact]
    public void Parses_packets_with_missing_timestamps_and_keyframe_flags()
    {
        // ffprobe -show_entries packet=… -of json on rtsp-camera.py; the first video packet has no PTS.
        const string Json = """
            {"packets": [
              {"codec_type": "video", "stream_index": 0, "pts_time": "N/A", "dts_time": "N/A", "size": "1770", "flags": "K_"},
              {"codec_type": "video", "stream_index": 0, "pts_time": "0.044911", "dts_time": "0.044911", "size": "404", "flags": "__"}
            ]}
            """;
        var packets = Ffprobe.ParsePackets(Json);
        Assert.Equal(new ProbePacket(0, "video", null, null, 1770, true), packets[0]);
        Assert.Equal(new ProbePacket(0, "video", 0.044911, 0.044911, 404, false), packets[1]);
    }
}
