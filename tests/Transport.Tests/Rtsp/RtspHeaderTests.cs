using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtsp;

public class RtspTransportTests
{
    [Fact]
    public void TCP_interleaved_round_trips()
    {
        var t = RtspTransport.Parse("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=1A2B3C4D;mode=\"PLAY\"");
        Assert.True(t.IsTcp);
        Assert.Equal((new RtspRange(2, 3), 0x1A2B3C4Du, "PLAY"), (t.Interleaved, t.Ssrc, t.Mode));
        Assert.Equal(t, RtspTransport.Parse(t.ToString()));
    }

    [Fact]
    public void UDP_ports_and_a_list_of_alternatives()
    {
        var list = RtspTransport.ParseList("RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971, RTP/AVP/TCP;interleaved=0");
        Assert.Equal(2, list.Count);
        Assert.False(list[0].IsTcp);
        Assert.Equal((new RtspRange(5000, 5001), new RtspRange(6970, 6971)), (list[0].ClientPort, list[0].ServerPort));
        Assert.Equal(new RtspRange(0, 1), list[1].Interleaved); // a single channel means n and n+1
    }

    [Theory]
    [InlineData("")]
    [InlineData("RAW/RAW/UDP;unicast")]
    [InlineData("RTP/AVP;client_port=abc")]
    [InlineData("RTP/AVP;client_port=70000-70001")]
    [InlineData("RTP/AVP/TCP;interleaved=300-301")]
    [InlineData("RTP/AVP;ssrc=xyz")]
    public void Malformed_transport_throws_the_protocol_exception(string header) =>
        Assert.Throws<RtspProtocolException>(() => RtspTransport.ParseList(header));

    [Fact]
    public void Session_with_and_without_timeout()
    {
        Assert.Equal(new RtspSession("abc123", 30), RtspSession.Parse("abc123;timeout=30"));
        Assert.Equal(new RtspSession("abc123", 60), RtspSession.Parse("abc123"));
        Assert.Equal("abc123;timeout=30", new RtspSession("abc123", 30).ToString());
        Assert.Throws<RtspProtocolException>(() => RtspSession.Parse(";timeout=3"));
        Assert.Throws<RtspProtocolException>(() => RtspSession.Parse("x;timeout=never"));
    }

    [Fact]
    public void Real_SETUP_answer_from_the_capture_is_not_needed_but_PLAY_RTP_Info_is_there()
    {
        var play = Captures.Stream("h265").Messages.Single();
        Assert.Contains("seq=", play.Headers["RTP-Info"], StringComparison.Ordinal);
        Assert.NotNull(RtspSession.Parse(play.Headers["Session"]!).Id);
    }
}

public class RtspUrlTests
{
    [Theory]
    [InlineData("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://***@10.0.0.5:554/stream1")]
    [InlineData("rtsp://admin@10.0.0.5/x", "rtsp://***@10.0.0.5/x")]
    [InlineData("rtsp://a:p@ss@h/x?y=z@w", "rtsp://***@h/x?y=z@w")]
    [InlineData("rtsp://h/x", "rtsp://h/x")]
    [InlineData("not a url", "not a url")]
    public void Redact_hides_userinfo(string url, string expected) => Assert.Equal(expected, RtspUrl.Redact(url));

    [Fact]
    public void RedactText_hides_every_URL_userinfo_in_free_text() =>
        Assert.Equal("ffmpeg -i rtsp://***@cam/1 -f h264 http://***@x/ -", RtspUrl.RedactText("ffmpeg -i rtsp://u:pw@cam/1 -f h264 http://me:x@x/ -"));

    [Fact]
    public void Credentials_are_decoded_and_stripped()
    {
        var url = new Uri("rtsp://us%40er:p%3Ass@cam:8554/live");
        Assert.True(RtspUrl.TryGetCredentials(url, out var user, out var password));
        Assert.Equal(("us@er", "p:ss"), (user, password));
        Assert.Equal("rtsp://cam:8554/live", RtspUrl.WithoutCredentials(url).AbsoluteUri);
    }
}

public class HttpAuthTests
{
    [Fact]
    public void GStreamer_Digest_challenge_from_the_capture_parses()
    {
        var reader = new System.Buffers.SequenceReader<byte>(new System.Buffers.ReadOnlySequence<byte>(Captures.Bytes("digest.401.bin")));
        Assert.True(RtspParser.TryParseMessage(ref reader, out var e));
        Assert.Equal(401, ((RtspResponse)e).StatusCode);
        var c = Assert.Single(HttpAuthChallenge.ParseAll(e.Headers.GetValues("WWW-Authenticate")));
        Assert.True(c.Is("digest"));
        Assert.Equal("GStreamer RTSP Server", c["realm"]);
        Assert.Equal(16, c["nonce"]!.Length);
        Assert.Null(c["qop"]);
    }

    [Fact]
    public void Several_challenges_in_one_header_and_Basic_token68()
    {
        var list = HttpAuthChallenge.ParseAll(["Basic realm=\"cam\", Digest realm=\"cam\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth,auth-int\"", "Newauth"]);
        Assert.Equal(new[] { "Basic", "Digest", "Newauth" }, list.Select(c => c.Scheme));
        Assert.Equal("auth,auth-int", list[1]["qop"]);
        var basic = HttpAuthChallenge.ParseOne("Basic dXNlcjpwYXNz");
        Assert.Equal("dXNlcjpwYXNz", basic.Token68);
        Assert.Throws<RtspProtocolException>(() => HttpAuthChallenge.ParseAll(["Digest realm=\"open"]));
    }

    [Fact]
    public void RFC_2617_and_RFC_7616_example_responses()
    {
        // RFC 2617 §3.5 (qop=auth, MD5).
        var ha1 = DigestMath.Ha1(DigestAlgorithm.Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
        Assert.Equal("6629fae49393a05397450978507c4ef1", DigestMath.Response(DigestAlgorithm.Md5, ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html", "auth", "00000001", "0a4f113b"));
        // RFC 7616 §3.9.1 (SHA-256 and MD5 for the same request).
        const string nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        var sha = DigestMath.Ha1(DigestAlgorithm.Sha256, "Mufasa", "http-auth@example.org", "Circle of Life");
        Assert.Equal("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", DigestMath.Response(DigestAlgorithm.Sha256, sha, nonce, "GET", "/dir/index.html", "auth", "00000001", cnonce));
        var md5 = DigestMath.Ha1(DigestAlgorithm.Md5, "Mufasa", "http-auth@example.org", "Circle of Life");
        Assert.Equal("8ca523f5e9506fed4657c9700eebdbec", DigestMath.Response(DigestAlgorithm.Md5, md5, nonce, "GET", "/dir/index.html", "auth", "00000001", cnonce));
    }

    [Fact]
    public void Client_prefers_SHA256_over_MD5_over_Basic()
    {
        var challenges = HttpAuthChallenge.ParseAll(["Basic realm=\"r\"", "Digest realm=\"r\", nonce=\"n\"", "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\""]);
        var auth = HttpClientAuthenticator.Create(challenges, "u", "p")!;
        Assert.Equal(("Digest", DigestAlgorithm.Sha256), (auth.Scheme, auth.Algorithm));
        Assert.Equal("Basic dTpw", HttpClientAuthenticator.Create(HttpAuthChallenge.ParseAll(["Basic realm=\"r\""]), "u", "p")!.Authorize("DESCRIBE", "rtsp://x"));
        Assert.Null(HttpClientAuthenticator.Create(HttpAuthChallenge.ParseAll(["Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"]), "u", "p"));
    }

    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Theory]
    [InlineData(DigestAlgorithm.Md5)]
    [InlineData(DigestAlgorithm.Sha256)]
    public void Server_challenge_client_answer_and_server_verify_agree(DigestAlgorithm algorithm)
    {
        var time = new ManualTime();
        var server = new DigestServer("Pinhole", TimeSpan.FromMinutes(5), time);
        string? Lookup(string user, string realm, string alg) =>
            user == "alice" ? DigestMath.Ha1(alg == "SHA-256" ? DigestAlgorithm.Sha256 : DigestAlgorithm.Md5, user, realm, "secret") : null;
        var challenge = HttpAuthChallenge.ParseAll([server.CreateChallenge(algorithm)]);

        var good = HttpClientAuthenticator.Create(challenge, "alice", "secret")!;
        var header = good.Authorize("DESCRIBE", "rtsp://relay/gw1/door");
        Assert.Equal(DigestVerdict.Valid, server.Verify(header, "DESCRIBE", Lookup, out var user));
        Assert.Equal("alice", user);
        Assert.Equal(DigestVerdict.Valid, server.Verify(good.Authorize("PLAY", "rtsp://relay/gw1/door"), "PLAY", Lookup, out _)); // nc=2
        Assert.Equal(DigestVerdict.Invalid, server.Verify(header, "PLAY", Lookup, out _)); // replayed for another method
        Assert.Equal(DigestVerdict.Invalid, server.Verify(HttpClientAuthenticator.Create(challenge, "alice", "wrong")!.Authorize("DESCRIBE", "u"), "DESCRIBE", Lookup, out _));
        Assert.Equal(DigestVerdict.Invalid, server.Verify(HttpClientAuthenticator.Create(challenge, "mallory", "secret")!.Authorize("DESCRIBE", "u"), "DESCRIBE", Lookup, out _));
        Assert.Equal(DigestVerdict.Invalid, server.Verify(header.Replace("nonce=\"", "nonce=\"1", StringComparison.Ordinal), "DESCRIBE", Lookup, out _)); // forged nonce
        Assert.Equal(DigestVerdict.Invalid, server.Verify("Digest garbage", "DESCRIBE", Lookup, out _));
        time.Now += TimeSpan.FromMinutes(6);
        Assert.Equal(DigestVerdict.Stale, server.Verify(good.Authorize("DESCRIBE", "u"), "DESCRIBE", Lookup, out _));
        Assert.Contains("stale=true", server.CreateChallenge(algorithm, stale: true), StringComparison.Ordinal);
        Assert.Contains("qop=\"auth\"", server.CreateChallenge(algorithm), StringComparison.Ordinal);
    }

    [Fact]
    public void A_nonce_issued_for_one_scope_is_stale_in_another_and_a_guess_there_stays_invalid()
    {
        var server = new DigestServer("Pinhole", TimeSpan.FromMinutes(5), new ManualTime());
        string? Lookup(string user, string realm, string alg) => user == "alice" ? DigestMath.Ha1(DigestAlgorithm.Md5, user, realm, "secret") : null;
        var challenge = HttpAuthChallenge.ParseAll([server.CreateChallenge(DigestAlgorithm.Md5, scope: "connection-1")]);
        var header = HttpClientAuthenticator.Create(challenge, "alice", "secret")!.Authorize("DESCRIBE", "rtsp://relay/gw1/door");

        Assert.Equal(DigestVerdict.Valid, server.Verify(header, "DESCRIBE", Lookup, out _, scope: "connection-1"));
        // Captured and replayed on another connection: right, but not this connection's nonce.
        Assert.Equal(DigestVerdict.Stale, server.Verify(header, "DESCRIBE", Lookup, out _, scope: "connection-2"));
        Assert.Equal(DigestVerdict.Invalid, server.Verify(header, "DESCRIBE", Lookup, out _)); // unscoped: a nonce it never issued
        // A wrong password with a foreign nonce is simply wrong.
        var guess = HttpClientAuthenticator.Create(challenge, "alice", "guess")!.Authorize("DESCRIBE", "rtsp://relay/gw1/door");
        Assert.Equal(DigestVerdict.Invalid, server.Verify(guess, "DESCRIBE", Lookup, out _, scope: "connection-2"));
    }

    [Fact]
    public void Basic_header_decodes()
    {
        Assert.True(DigestServer.TryParseBasic("Basic YWxpY2U6czpjcmV0", out var u, out var p));
        Assert.Equal(("alice", "s:cret"), (u, p));
        Assert.False(DigestServer.TryParseBasic("Basic !!!", out _, out _));
        Assert.False(DigestServer.TryParseBasic("Digest x", out _, out _));
    }
}
