using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Streaming;
using Pinhole.Testing.Media;

namespace Pinhole.Relay.Tests.WebRtc;

/// <summary>
/// The WHEP HTTP surface of a real relay (in process, loopback, WebRTC on a free UDP port): who may
/// offer, Origin checks for cookie sessions, DELETE ending a session, and bad offers answered 400
/// with a reason while the relay keeps serving. No browser: plain HttpClient.
/// </summary>
public sealed class WhepEndpointTests : IAsyncLifetime
{
    private const string Device = "gw1";
    private const string Camera = "door";
    private const string Whep = $"/whep/{Device}/{Camera}";

    // The shape of a Chromium recvonly offer (bundled video, H.264 packetization-mode 1 in Constrained
    // Baseline and High, as Chromium offers both; the x264 test clip is High).
    private const string Offer =
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n" +
        "m=video 9 UDP/TLS/RTP/SAVPF 102 112\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
        "a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r\na=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n" +
        "a=rtpmap:102 H264/90000\r\na=rtcp-fb:102 nack\r\na=rtcp-fb:102 nack pli\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
        "a=rtpmap:112 H264/90000\r\na=rtcp-fb:112 nack\r\na=rtcp-fb:112 nack pli\r\na=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f\r\n";

    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-whep-").FullName;
    private RelayApp _relay = null!;
    private string _token = "";

    public async Task InitializeAsync()
    {
        var config = new RelayConfig
        {
            Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = _dir,
            Viewers = [new ViewerConfig { User = "alice", Password = "alice-secret" }, new ViewerConfig { User = "bob", Password = "bob-secret" }],
            WebRtc = new WebRtcConfig { Udp = "127.0.0.1:0", Tcp = false },
        };
        _relay = await RelayApp.StartAsync(config);
        _token = ApiTokens.Create(_relay.Services.GetRequiredService<IFleetStore>(), "deploy-bot", DateTimeOffset.UtcNow);
        // A real encoder's tracks (x264, no B-frames), so the relay's SPS checks see what a camera sends.
        _relay.Services.GetRequiredService<MediaStreamRegistry>().GetOrAdd(Device, Camera).OnTracks([TestClips.H264(seconds: 1).Tracks[0]]);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private HttpClient Client(CookieContainer? cookies = null) =>
        new(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies ?? new CookieContainer(), UseCookies = true }) { BaseAddress = _relay.HttpUri };

    private async Task<CookieContainer> LogInAsync(string user, string password)
    {
        var cookies = new CookieContainer();
        using var client = Client(cookies);
        using var r = await client.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", user), new("password", password)]));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        return cookies;
    }

    private static HttpRequestMessage Post(string sdp, string? bearer = null, string? origin = null, string contentType = "application/sdp")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Whep, UriKind.Relative)) { Content = new StringContent(sdp, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (origin is not null) request.Headers.Add("Origin", origin);
        return request;
    }

    private static HttpRequestMessage Delete(Uri resource, string? bearer = null, string? origin = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Delete, resource);
        if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        if (origin is not null) request.Headers.Add("Origin", origin);
        return request;
    }

    private string Self => _relay.HttpUri.GetLeftPart(UriPartial.Authority);

    private int Viewers => _relay.Services.GetRequiredService<MediaStreamRegistry>().GetOrAdd(Device, Camera).ViewerCount;

    [Fact]
    public async Task An_offer_without_a_session_or_token_is_401_with_a_Bearer_challenge()
    {
        using var client = Client();
        using var r = await client.SendAsync(Post(Offer));
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        Assert.Equal("Bearer", Assert.Single(r.Headers.WwwAuthenticate).Scheme);
        Assert.Contains("Bearer", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var wrong = await client.SendAsync(Post(Offer, bearer: "pht_not-a-token"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        Assert.Equal(0, Viewers);
    }

    [Fact]
    public async Task A_Bearer_token_gets_201_with_an_ice_lite_answer_and_DELETE_ends_the_session_once()
    {
        using var client = Client();
        using var r = await client.SendAsync(Post(Offer, bearer: _token, origin: "https://anywhere.example"));
        var answer = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.Created, $"{(int)r.StatusCode} {answer}");
        Assert.Equal("application/sdp", r.Content.Headers.ContentType?.MediaType);
        Assert.Contains("a=ice-lite\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("a=setup:passive\r\n", answer, StringComparison.Ordinal);
        Assert.Contains("packetization-mode=1", answer, StringComparison.Ordinal);
        var resource = r.Headers.Location!;
        Assert.StartsWith(Whep + "/", resource.OriginalString, StringComparison.Ordinal);
        Assert.Equal(1, Viewers);

        using (var status = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, resource) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", _token) } }))
        {
            Assert.Equal(HttpStatusCode.OK, status.StatusCode);
            Assert.Contains("\"state\":\"connecting\"", await status.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var noAuth = await client.SendAsync(Delete(resource));
        Assert.Equal(HttpStatusCode.Unauthorized, noAuth.StatusCode);
        Assert.Equal(1, Viewers);

        using var ended = await client.SendAsync(Delete(resource, bearer: _token));
        Assert.Equal(HttpStatusCode.OK, ended.StatusCode);
        Assert.Equal(0, Viewers);
        using var again = await client.SendAsync(Delete(resource, bearer: _token));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
    }

    [Fact]
    public async Task A_session_cookie_is_accepted_from_the_relays_own_page_and_refused_403_from_another_Origin()
    {
        var cookies = await LogInAsync("alice", "alice-secret");
        using var client = Client(cookies);

        using var foreign = await client.SendAsync(Post(Offer, origin: "https://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, foreign.StatusCode);
        Assert.Contains("Origin", await foreign.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, Viewers);

        using var own = await client.SendAsync(Post(Offer, origin: Self));
        Assert.Equal(HttpStatusCode.Created, own.StatusCode);
        var resource = own.Headers.Location!;

        // Ending it is a state change riding on the cookie too: another site cannot.
        using var foreignDelete = await client.SendAsync(Delete(resource, origin: "https://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, foreignDelete.StatusCode);
        Assert.Equal(1, Viewers);
        using var ownDelete = await client.SendAsync(Delete(resource, origin: Self));
        Assert.Equal(HttpStatusCode.OK, ownDelete.StatusCode);
        Assert.Equal(0, Viewers);
    }

    [Fact]
    public async Task A_viewer_cannot_end_or_read_another_viewers_session_403()
    {
        using var alice = Client(await LogInAsync("alice", "alice-secret"));
        using var bob = Client(await LogInAsync("bob", "bob-secret"));
        using var r = await alice.SendAsync(Post(Offer, origin: Self));
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        var resource = r.Headers.Location!;

        using var bobDelete = await bob.SendAsync(Delete(resource, origin: Self));
        Assert.Equal(HttpStatusCode.Forbidden, bobDelete.StatusCode);
        Assert.Contains("another viewer", await bobDelete.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var bobStatus = await bob.GetAsync(resource);
        Assert.Equal(HttpStatusCode.NotFound, bobStatus.StatusCode);
        using var tokenDelete = await bob.SendAsync(Delete(resource, bearer: _token));
        Assert.Equal(HttpStatusCode.Forbidden, tokenDelete.StatusCode);
        Assert.Equal(1, Viewers);

        using var aliceDelete = await alice.SendAsync(Delete(resource, origin: Self));
        Assert.Equal(HttpStatusCode.OK, aliceDelete.StatusCode);
    }

    [Theory]
    [InlineData("hello")]
    [InlineData("v=0\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\na=rtpmap:102 H264/90000\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:Ab3d\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AA:BB\r\na=setup:actpass\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n")]
    [InlineData("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n\0\0\0\u00ff\u00fe garbage \r\n")]
    public async Task A_bad_offer_is_400_with_the_reason_and_the_relay_keeps_serving(string sdp)
    {
        using var client = Client();
        using var r = await client.SendAsync(Post(sdp, bearer: _token));
        var body = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"{(int)r.StatusCode} {body}");
        Assert.Equal("text/plain", r.Content.Headers.ContentType?.MediaType);
        Assert.True(body.Trim().Length > 10, $"no reason given: '{body}'");
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        Assert.Equal(0, Viewers);

        // The process is unaffected: a good offer right after is answered.
        using var good = await client.SendAsync(Post(Offer, bearer: _token));
        Assert.Equal(HttpStatusCode.Created, good.StatusCode);
        using var health = await client.GetAsync(new Uri("/healthz", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Wrong_content_type_is_415_and_an_oversized_offer_413()
    {
        using var client = Client();
        using var json = await client.SendAsync(Post(Offer, bearer: _token, contentType: "application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
        using var huge = await client.SendAsync(Post(Offer + new string('a', 40_000), bearer: _token));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
        using var unknown = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri("/whep/gw1/nope", UriKind.Relative))
        {
            Content = new StringContent(Offer, Encoding.UTF8, "application/sdp"),
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", _token) },
        });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(0, Viewers);
    }
}
