using Pinhole.Relay.Configuration;
using Pinhole.Relay.WebRtc;
using Pinhole.Transport.Media;

namespace Pinhole.Relay.Tests.WebRtc;

public class WebRtcSdpTests
{
    // The shape of a Chromium recvonly offer (video H.264 and VP8, audio Opus/PCMA), shortened.
    private const string ChromeOffer =
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n" +
        "m=video 9 UDP/TLS/RTP/SAVPF 96 102 103\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
        "a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n" +
        "a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n" +
        "a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n" +
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 8 0\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\n" +
        "a=rtpmap:111 opus/48000/2\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n";

    // A constrained-baseline SPS (profile 66, constraints 0xc0, level 30), enough for the profile-level-id.
    private static TrackInfo Video => new() { Codec = MediaCodec.H264, ClockRate = 90000, ParameterSets = [new byte[] { 0x67, 0x42, 0xc0, 0x1e, 0xd9 }, new byte[] { 0x68, 0xce, 0x3c, 0x80 }], Width = 640, Height = 360 };

    [Fact]
    public void A_Chromium_offer_is_answered_ice_lite_passive_with_H264_mode_1_and_the_cameras_profile()
    {
        var offer = WebRtcSdp.ParseOffer(ChromeOffer);
        Assert.Equal("Ab3d", offer.IceUfrag);
        Assert.Single(offer.Fingerprints);
        var media = WebRtcSdp.Choose(offer, [Video, new TrackInfo { Codec = MediaCodec.PcmAlaw, ClockRate = 8000, SampleRate = 8000, Channels = 1 }], () => 1234);
        Assert.Equal(102, media[0].PayloadType); // mode 1, not 103 (mode 0) nor VP8
        Assert.Equal(8, media[1].PayloadType);   // PCMA passes through
        var answer = WebRtcSdp.BuildAnswer(offer, media, "lite", "0123456789abcdefghijkl", "sha-256 00:11", [("127.0.0.1", 8443)], [("127.0.0.1", 8443)], 7);
        Assert.Contains("a=ice-lite\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("a=group:BUNDLE 0 1\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("a=setup:passive\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c01e\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("a=candidate:1 1 udp ", answer, StringComparison.Ordinal);
        Assert.Contains(" 127.0.0.1 8443 typ host tcptype passive\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("a=rtpmap:8 PCMA/8000\r\n", answer, StringComparison.Ordinal);
        // The answer is SDP the project's own parser reads back.
        Assert.Equal(2, Pinhole.Transport.Sdp.SessionDescription.Parse(answer).Media.Count);
    }

    [Fact]
    public void AAC_audio_is_answered_inactive_video_only()
    {
        var offer = WebRtcSdp.ParseOffer(ChromeOffer);
        var media = WebRtcSdp.Choose(offer, [Video, new TrackInfo { Codec = MediaCodec.Aac, ClockRate = 48000, SampleRate = 48000, Channels = 1 }], () => 1);
        Assert.Equal(-1, media[1].PayloadType);
        var answer = WebRtcSdp.BuildAnswer(offer, media, "lite", "0123456789abcdefghijkl", "sha-256 00", [], [], 1);
        Assert.Contains("a=inactive\r\n", answer, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("hello")]
    [InlineData("v=0\r\n")]
    [InlineData("v=0\r\nm=video 9 RTP/AVP 96\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:A\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:short\r\na=fingerprint:sha-256 AA:BB\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 ZZ:QQ\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\na=setup:passive\r\n")]
    public void Malformed_or_unusable_offers_are_refused_with_a_reason(string sdp)
    {
        var e = Assert.Throws<WebRtcOfferException>(() => WebRtcSdp.ParseOffer(sdp));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
    }

    [Fact]
    public void Every_prefix_of_a_real_offer_parses_or_is_refused_never_anything_else()
    {
        for (var n = 0; n <= ChromeOffer.Length; n++)
        {
            try
            {
                var offer = WebRtcSdp.ParseOffer(ChromeOffer[..n]);
                try { WebRtcSdp.Choose(offer, [Video], () => 1); }
                catch (WebRtcOfferException) { }
                catch (MediaFormatException) { }
            }
            catch (WebRtcOfferException)
            {
            }
        }
    }

    [Fact]
    public void An_offer_without_H264_mode_1_is_refused()
    {
        var offer = WebRtcSdp.ParseOffer(ChromeOffer.Replace("packetization-mode=1", "packetization-mode=0", StringComparison.Ordinal));
        Assert.Throws<WebRtcOfferException>(() => WebRtcSdp.Choose(offer, [Video], () => 1));
    }

    [Fact]
    public void TURN_REST_credentials_are_expiry_colon_user_and_base64_HMAC_SHA1_of_it()
    {
        var (user, credential) = IceServers.Mint("secret", "alice", DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));
        Assert.Equal("1700000000:alice", user);
        // echo -n 1700000000:alice | openssl dgst -sha1 -hmac secret -binary | base64
        Assert.Equal(Convert.ToBase64String(System.Security.Cryptography.HMACSHA1.HashData("secret"u8, "1700000000:alice"u8)), credential);
        var json = IceServers.ForViewer([new IceServerConfig { Urls = ["turn:turn.example:3478"], Secret = "s", Ttl = 60 }, new IceServerConfig { Urls = ["stun:stun.example:3478"] }], "bob", DateTimeOffset.UnixEpoch);
        Assert.Equal("60:bob", json[0]!["username"]!.GetValue<string>());
        Assert.Null(json[1]!["username"]);
    }

    [Theory]
    [InlineData("""{ "webrtc": { "udp": "nonsense" } }""", "webrtc.udp")]
    [InlineData("""{ "webrtc": { "publicAddresses": ["not-an-ip"] } }""", "webrtc.publicAddresses[0]")]
    [InlineData("""{ "webrtc": { "port": 1 } }""", "webrtc.port: unknown key")]
    [InlineData("""{ "iceServers": [ { "urls": "http://x" } ] }""", "iceServers[0].urls")]
    [InlineData("""{ "iceServers": [ { "urls": "turn:x:3478", "secret": "s", "username": "u" } ] }""", "iceServers[0]: give either")]
    [InlineData("""{ "iceServers": [ { } ] }""", "iceServers[0].urls: required")]
    public void Bad_webrtc_config_is_reported_with_its_path(string json, string expected)
    {
        var config = RelayConfigLoader.Load(json, Path.GetTempPath(), out var problems);
        Assert.Null(config);
        Assert.Contains(problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void Good_webrtc_config_loads()
    {
        var config = RelayConfigLoader.Load("""{ "anonymousViewing": true, "webrtc": { "udp": "0.0.0.0:8443", "publicAddresses": ["203.0.113.7"] }, "iceServers": [ { "urls": ["turn:turn.example:3478?transport=udp"], "secret": "s" } ] }""", Path.GetTempPath(), out var problems);
        Assert.True(config is not null, string.Join("\n", problems));
        Assert.Equal("0.0.0.0:8443", config.WebRtc!.Udp);
        Assert.Equal(["203.0.113.7"], config.WebRtc.PublicAddresses);
        Assert.Equal("s", config.IceServers[0].Secret);
    }
}
