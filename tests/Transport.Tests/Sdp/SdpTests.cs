using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Sdp;

public class SdpTests
{
    [Fact]
    public void Real_GStreamer_SDP_gives_media_rtpmap_fmtp_and_controls()
    {
        var sdp = Captures.Sdp("h264-aac");
        Assert.Equal("*", sdp.Control);
        Assert.Equal(2, sdp.Media.Count);
        var video = sdp.Media[0];
        Assert.Equal(("video", "RTP/AVP", 96, "stream=0"), (video.Media, video.Protocol, video.PayloadType, video.Control));
        Assert.Equal(new SdpRtpMap(96, "H264", 90000, 1), video.RtpMap(96));
        Assert.Equal("1", video.Fmtp(96)["packetization-mode"]);
        Assert.Equal("42c01e", video.Fmtp(96)["profile-level-id"]);
        var audio = sdp.Media[1];
        Assert.Equal(new SdpRtpMap(97, "MPEG4-GENERIC", 48000, 1), audio.RtpMap(97));
        Assert.Equal("AAC-hbr", audio.Fmtp(97)["mode"]);
        Assert.Equal("stream=1", audio.Control);
    }

    [Fact]
    public void Static_payload_types_need_no_rtpmap()
    {
        var sdp = SessionDescription.Parse("v=0\r\ns=x\r\nm=audio 0 RTP/AVP 0\r\n");
        Assert.Equal(new SdpRtpMap(0, "PCMU", 8000, 1), sdp.Media[0].RtpMap(0));
    }

    [Theory]
    [InlineData("rtsp://h:554/cam/", "stream=0", "rtsp://h:554/cam/stream=0")]
    [InlineData("rtsp://h:554/cam", "trackID=1", "rtsp://h:554/cam/trackID=1")]
    [InlineData("rtsp://h/cam/", "rtsp://other:8554/x/track1", "rtsp://other:8554/x/track1")]
    [InlineData("rtsp://h/cam/", "*", "rtsp://h/cam/")]
    [InlineData("rtsp://h/cam/", null, "rtsp://h/cam/")]
    [InlineData("rtsp://h/cam/?token=1", "/abs/track", "rtsp://h/abs/track")]
    public void Control_urls_resolve_against_the_base(string baseUrl, string? control, string expected) =>
        Assert.Equal(expected, RtspUrl.ResolveControl(new Uri(baseUrl), control).AbsoluteUri);

    [Theory]
    [InlineData("")]
    [InlineData("s=no version\r\n")]
    [InlineData("v=1\r\n")]
    [InlineData("v=0\r\nm=video\r\n")]
    [InlineData("v=0\r\nm=video x RTP/AVP 96\r\n")]
    [InlineData("v=0\r\ngarbage\r\n")]
    [InlineData("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\n")]
    public void Malformed_SDP_throws_the_protocol_exception(string text)
    {
        Assert.Throws<MediaFormatException>(() =>
        {
            var sdp = SessionDescription.Parse(text);
            foreach (var m in sdp.Media) m.RtpMap(m.PayloadType);
        });
    }

    [Fact]
    public void Huge_SDP_is_rejected_before_parsing() =>
        Assert.Throws<MediaFormatException>(() => SessionDescription.Parse("v=0\r\n" + new string('a', SessionDescription.MaxLength)));

    [Fact]
    public void Writer_output_parses_back_into_depacketizers_with_the_same_tracks()
    {
        // Tracks as the capture's depacketizers see them: real SPS/PPS, VPS/SPS/PPS and AAC config.
        var tracks = new List<TrackInfo>
        {
            Captures.Depacketize("h264-aac", 0).Depacketizer.TrackInfo!,
            Captures.Depacketize("h265", 0).Depacketizer.TrackInfo!,
            Captures.Depacketize("h264-aac", 1).Depacketizer.TrackInfo!,
            new() { Codec = MediaCodec.PcmAlaw, ClockRate = 8000, SampleRate = 8000, Channels = 1 },
            new() { Codec = MediaCodec.PcmMulaw, ClockRate = 8000, SampleRate = 8000, Channels = 1 },
        };
        var text = SdpWriter.Build(tracks).ToString();
        Assert.Contains("a=fmtp:96 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets=", text, StringComparison.Ordinal);
        Assert.Contains("sprop-vps=", text, StringComparison.Ordinal);
        Assert.Contains("mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1188", text, StringComparison.Ordinal);
        Assert.Contains("m=audio 0 RTP/AVP 8\r\n", text, StringComparison.Ordinal);
        Assert.Contains("m=audio 0 RTP/AVP 0\r\n", text, StringComparison.Ordinal);
        var parsed = SessionDescription.Parse(text);
        Assert.Equal(tracks.Count, parsed.Media.Count);
        for (var i = 0; i < tracks.Count; i++)
        {
            Assert.Equal(SdpWriter.TrackControl(i), parsed.Media[i].Control);
            Assert.True(RtpDepacketizerFactory.TryCreate(parsed.Media[i], i, out var dep));
            Assert.Equal(tracks[i], dep!.TrackInfo);
        }
    }

    [Fact]
    public void Unsupported_formats_are_skipped_not_failed()
    {
        var sdp = SessionDescription.Parse("v=0\r\nm=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\nm=video 0 RTP/AVP 26\r\n");
        Assert.False(RtpDepacketizerFactory.TryCreate(sdp.Media[0], 0, out _));
        Assert.False(RtpDepacketizerFactory.TryCreate(sdp.Media[1], 0, out _)); // MJPEG
    }
}
