using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Streaming;
using Pinhole.Relay.Web;
using Pinhole.Testing;
using Pinhole.Testing.Media;
using Pinhole.Transport.Media;
using Pinhole.Transport.Tests.Fmp4;

namespace Pinhole.Relay.Tests.Web;

public class BrowserEndpointTests
{
    // Enough for pages and sockets that never get frames; tests that stream use real encoded media.
    private static readonly TrackInfo Video = new()
    {
        Codec = MediaCodec.H264, ClockRate = 90_000, Width = 640, Height = 360,
        ParameterSets = [new byte[] { 0x67, 0x64, 0x00, 0x1e, 0xac }, new byte[] { 0x68, 0xeb, 0xe3, 0xcb }],
    };

    private static FormUrlEncodedContent LoginForm(string user, string password) => new([new("user", user), new("password", password)]);

    [Fact]
    public async Task Login_form_has_inputs_user_and_password_and_one_submit_button()
    {
        await using var host = await BrowserTestHost.StartAsync();
        using var client = host.CreateClient();
        using var r = await client.GetAsync("/login");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var html = await r.Content.ReadAsStringAsync();
        var form = Regex.Match(html, "<form.*?</form>", RegexOptions.Singleline).Value;
        Assert.Equal(["user", "password"], Regex.Matches(form, "<input[^>]*name=\"([^\"]+)\"").Select(m => m.Groups[1].Value));
        Assert.Single(Regex.Matches(form, "<button[^>]*type=\"submit\""));
        Assert.Empty(Regex.Matches(html.Replace(form, "", StringComparison.Ordinal), "<(input|button)"));
        Assert.Contains("method=\"post\"", form, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/play/gw1/door")]
    public async Task Pages_need_a_login_and_send_the_viewer_to_it_with_the_way_back(string path)
    {
        await using var host = await BrowserTestHost.StartAsync();
        host.Registry.GetOrAdd("gw1", "door");
        using var client = host.CreateClient();
        using var r = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal("/login?next=" + Uri.EscapeDataString(path), r.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Login_sets_an_httponly_samesite_cookie_and_returns_to_the_requested_page()
    {
        await using var host = await BrowserTestHost.StartAsync();
        var stream = host.Registry.GetOrAdd("gw1", "door");
        stream.OnTracks([Video]);
        using var client = host.CreateClient();
        using var r = await client.PostAsync("/login?next=%2Fplay%2Fgw1%2Fdoor", LoginForm(BrowserTestHost.User, BrowserTestHost.Password));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal("/play/gw1/door", r.Headers.Location!.OriginalString);
        var setCookie = Assert.Single(r.Headers.GetValues("Set-Cookie"), c => c.StartsWith(RelaySignIn.CookieName + "=", StringComparison.Ordinal));
        Assert.StartsWith(RelaySignIn.CookieName + "=", setCookie, StringComparison.Ordinal);
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("secure", setCookie, StringComparison.OrdinalIgnoreCase); // plain HTTP here

        using var page = await client.GetAsync("/play/gw1/door");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("data-ws=\"/play/gw1/door/ws\"", html, StringComparison.Ordinal);
        Assert.Contains("<video", html, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);

        using var list = await client.GetAsync("/");
        var listHtml = await list.Content.ReadAsStringAsync();
        Assert.Matches("data-device=\"gw1\" data-camera=\"door\" data-state=\"online\"", listHtml);
        Assert.Contains("H.264 (avc1.64001e)", listHtml, StringComparison.Ordinal);
        Assert.Contains("640×360", listHtml, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_camera_list_shows_state_codec_resolution_viewers_and_devices_without_cameras()
    {
        var dataDir = Directory.CreateTempSubdirectory("pinhole-devices-");
        try
        {
            await using var host = await BrowserTestHost.StartAsync(services: s =>
                s.AddSingleton(new DeviceRegistry(dataDir.FullName, [new DeviceConfig { Id = "gw1", Token = "t1" }, new DeviceConfig { Id = "gw9", Token = "t9" }])));
            host.Registry.GetOrAdd("gw1", "door").OnTracks([Video]);
            var yard = host.Registry.GetOrAdd("gw1", "yard");
            yard.OnTracks([Video with { Width = 1920, Height = 1080 }]);
            yard.SetOffline();
            using var viewer = host.Registry.GetOrAdd("gw1", "door").Subscribe();
            var cookies = await host.LogInAsync();
            using var client = host.CreateClient(cookies);
            var html = await client.GetStringAsync("/");
            var rows = Regex.Matches(html, "<tr data-device=.*?</tr>", RegexOptions.Singleline).Select(m => m.Value).ToList();
            Assert.Equal(3, rows.Count);
            Assert.Contains("data-camera=\"door\" data-state=\"online\"", rows[0], StringComparison.Ordinal);
            Assert.Contains("<td class=\"num\">1</td>", rows[0], StringComparison.Ordinal); // one viewer
            Assert.Contains("href=\"/play/gw1/door\"", rows[0], StringComparison.Ordinal);
            Assert.Contains("data-camera=\"yard\" data-state=\"offline\"", rows[1], StringComparison.Ordinal);
            Assert.Contains("1920×1080", rows[1], StringComparison.Ordinal);
            Assert.Contains("data-device=\"gw9\" data-state=\"offline\"", rows[2], StringComparison.Ordinal);
            Assert.Contains("no camera announced yet", rows[2], StringComparison.Ordinal);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            dataDir.Delete(true);
        }
    }

    [Fact]
    public async Task Over_https_the_cookie_is_secure()
    {
        await using var host = await BrowserTestHost.StartAsync(https: true);
        using var client = host.CreateClient();
        using var r = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, BrowserTestHost.Password));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal("/", r.Headers.Location!.OriginalString);
        var setCookie = Assert.Single(r.Headers.GetValues("Set-Cookie"), c => c.StartsWith(RelaySignIn.CookieName + "=", StringComparison.Ordinal));
        Assert.Contains("; secure", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_wrong_password_gets_401_the_form_again_and_no_session()
    {
        await using var host = await BrowserTestHost.StartAsync();
        using var client = host.CreateClient();
        using var r = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, "wrong"));
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        Assert.False(r.Headers.Contains("Set-Cookie"));
        Assert.Contains("Wrong user name or password", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var unknown = await client.PostAsync("/login", LoginForm("mallory", BrowserTestHost.Password));
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        using var list = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, list.StatusCode);
    }

    [Fact]
    public async Task Repeated_failures_lock_the_client_out_with_a_growing_delay_even_for_the_right_password()
    {
        var time = new ManualTimeProvider();
        await using var host = await BrowserTestHost.StartAsync(o => { o.FreeLoginFailures = 2; o.FirstLockout = TimeSpan.FromSeconds(60); }, time);
        using var client = host.CreateClient();
        for (var i = 0; i < 2; i++)
        {
            using var free = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, "guess" + i));
            Assert.Equal(HttpStatusCode.Unauthorized, free.StatusCode);
        }
        using (var third = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, "guess3")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
            Assert.Equal("60", third.Headers.GetValues("Retry-After").Single());
        }
        using (var right = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, BrowserTestHost.Password)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, right.StatusCode);
            Assert.False(right.Headers.Contains("Set-Cookie"));
        }
        using (var otherUser = await client.PostAsync("/login", LoginForm("bob", "x")))
            Assert.Equal(HttpStatusCode.TooManyRequests, otherUser.StatusCode); // the address is locked too

        time.Advance(TimeSpan.FromSeconds(61));
        using (var again = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, "guess4")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, again.StatusCode);
            Assert.Equal("120", again.Headers.GetValues("Retry-After").Single()); // doubled
        }
        time.Advance(TimeSpan.FromSeconds(121));
        using (var ok = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, BrowserTestHost.Password)))
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        using (var afterSuccess = await client.PostAsync("/login", LoginForm(BrowserTestHost.User, "typo")))
            Assert.Equal(HttpStatusCode.Unauthorized, afterSuccess.StatusCode); // the count starts over
    }

    [Fact]
    public void The_throttle_counts_per_user_across_addresses()
    {
        var time = new ManualTimeProvider();
        var throttle = new Pinhole.Transport.Security.LoginThrottle(new BrowserViewingOptions { FreeLoginFailures = 3 }.LoginThrottle(), time);
        for (var i = 0; i < 3; i++) Assert.Equal(TimeSpan.Zero, throttle.Failed($"10.0.0.{i}", "alice"));
        Assert.Equal(TimeSpan.FromSeconds(2), throttle.Failed("10.0.0.9", "alice"));
        Assert.True(throttle.RetryAfter("10.0.0.50", "alice") > TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, throttle.RetryAfter("10.0.0.50", "bob"));
        for (var i = 0; i < 20; i++) throttle.Failed($"10.1.0.{i}", "carol");
        Assert.Equal(TimeSpan.FromMinutes(15), throttle.RetryAfter("10.2.0.1", "carol")); // capped
    }

    [Theory]
    [InlineData("//evil.example/x")]
    [InlineData("/\\evil.example")]
    [InlineData("https://evil.example/")]
    public async Task Login_never_redirects_off_site(string next)
    {
        await using var host = await BrowserTestHost.StartAsync();
        using var client = host.CreateClient();
        using var r = await client.PostAsync("/login?next=" + Uri.EscapeDataString(next), LoginForm(BrowserTestHost.User, BrowserTestHost.Password));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal("/", r.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Logout_ends_the_session()
    {
        await using var host = await BrowserTestHost.StartAsync();
        var cookies = await host.LogInAsync();
        using var client = host.CreateClient(cookies);
        var stolen = cookies.GetCookies(host.BaseUri)[RelaySignIn.CookieName]!.Value;
        using (var r = await client.GetAsync("/")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        // Without the page's antiforgery token (another site's form): 400, and the session lives on.
        using (var r = await client.PostAsync("/logout", null)) Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using (var r = await client.GetAsync("/")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var token = await RelayAntiforgery.TokenAsync(client, "/");
        using (var r = await client.PostAsync("/logout", new FormUrlEncodedContent([new(RelaySignIn.TokenField, token)])))
            Assert.Equal("/login", r.Headers.Location!.OriginalString);
        using var replay = host.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Headers.Add("Cookie", $"{RelaySignIn.CookieName}={stolen}");
        using var after = await replay.SendAsync(request);
        Assert.Equal(HttpStatusCode.Redirect, after.StatusCode); // the old cookie value is dead server-side
    }

    [Fact]
    public async Task Forged_or_malformed_requests_get_4xx_and_never_crash_the_relay()
    {
        await using var host = await BrowserTestHost.StartAsync();
        var cookies = await host.LogInAsync();
        using var client = host.CreateClient(cookies);
        var good = cookies.GetCookies(host.BaseUri)[RelaySignIn.CookieName]!.Value;
        var forged = good[..^3] + (good[^3] == 'A' ? "B" : "A") + good[^2..];
        using var anon = host.CreateClient();
        using (var req = new HttpRequestMessage(HttpMethod.Get, "/"))
        {
            req.Headers.Add("Cookie", $"{RelaySignIn.CookieName}={forged}");
            using var r = await anon.SendAsync(req);
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        }
        using (var r = await anon.PostAsync("/login", new StringContent("user=alice&password=" + new string('x', 20_000), Encoding.UTF8, "application/x-www-form-urlencoded")))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using (var r = await anon.PostAsync("/login", new StringContent("{\"user\":\"alice\"}", Encoding.UTF8, "application/json")))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using (var r = await anon.PostAsync("/login", new StringContent("%%%&&&=", Encoding.UTF8, "application/x-www-form-urlencoded")))
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        using (var r = await client.GetAsync("/play/nope/%00%2F..")) Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode); // Kestrel refuses NUL
        using (var r = await client.GetAsync("/play/nope/..%2F..%2Fetc")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await client.GetAsync("/play/%3Cscript%3E/x"))
        {
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            Assert.Contains("&lt;script&gt;", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var r = await client.GetAsync("/assets/..%2FWeb%2FBrowserViewing.cs")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await client.GetAsync("/play/gw1/door/ws")) Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode); // not a WebSocket request
        using (var r = await client.GetAsync("/assets/player.js"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Contains("MediaSource", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var r = await client.GetAsync("/")) Assert.Equal(HttpStatusCode.OK, r.StatusCode); // still serving
    }

    [Fact]
    public async Task The_stream_socket_refuses_viewers_without_login_with_401()
    {
        await using var host = await BrowserTestHost.StartAsync();
        host.Registry.GetOrAdd("gw1", "door").OnTracks([Video]);
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        ws.Options.SetRequestHeader("Origin", host.Origin);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(host.WebSocketUri("gw1", "door"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, ws.HttpStatusCode);
    }

    [Theory]
    [InlineData("http://evil.example")]
    [InlineData("null")]
    [InlineData("https://127.0.0.1")]
    public async Task The_stream_socket_refuses_a_foreign_origin_with_403_even_with_a_valid_session(string origin)
    {
        await using var host = await BrowserTestHost.StartAsync();
        host.Registry.GetOrAdd("gw1", "door").OnTracks([Video]);
        var cookies = await host.LogInAsync();
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        ws.Options.Cookies = cookies;
        ws.Options.SetRequestHeader("Origin", origin);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(host.WebSocketUri("gw1", "door"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);
        Assert.Equal(0, host.Registry.GetOrAdd("gw1", "door").ViewerCount);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task The_stream_socket_sends_init_then_fragments_from_the_cached_gop_and_reinitialises_after_the_device_returns()
    {
        await using var host = await BrowserTestHost.StartAsync();
        var stream = host.Registry.GetOrAdd("gw1", "door");
        var clip = TestClips.H264(seconds: 2);
        stream.OnTracks(clip.Tracks);
        var units = clip.Units.ToList();
        foreach (var u in units.Take(30)) stream.OnAccessUnit(u); // GOP of 25: the cache holds frames 25..29

        var cookies = await host.LogInAsync();
        using var ws = new ClientWebSocket();
        ws.Options.Cookies = cookies;
        ws.Options.SetRequestHeader("Origin", host.Origin);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(host.WebSocketUri("gw1", "door"), timeout.Token);
        Assert.Equal(1, stream.ViewerCount);

        var init = await ReceiveJson(ws, timeout.Token);
        Assert.Equal("init", init.GetProperty("type").GetString());
        Assert.Matches("^video/mp4; codecs=\"avc1\\.[0-9a-f]{6}\"$", init.GetProperty("mime").GetString());
        Assert.False(init.GetProperty("audio").GetBoolean());
        var initSegment = await ReceiveBinary(ws, timeout.Token);
        Assert.Equal(["ftyp", "moov"], BoxWalker.Walk(initSegment).Select(b => b.Type));

        var first = BoxWalker.Walk(await ReceiveBinary(ws, timeout.Token));
        Assert.Equal(0x02000000u, first[0].Find("traf/trun").U32(20)); // starts on the cached keyframe
        Assert.Equal(units[25].Data.ToArray(), first[1].Payload.ToArray());
        for (var i = 26; i < 30; i++)
            Assert.Equal(units[i].Data.ToArray(), BoxWalker.Walk(await ReceiveBinary(ws, timeout.Token))[1].Payload.ToArray());
        stream.OnAccessUnit(units[30]);
        Assert.Equal(units[30].Data.ToArray(), BoxWalker.Walk(await ReceiveBinary(ws, timeout.Token))[1].Payload.ToArray());

        // The device leaves and comes back with the same tracks and a restarted clock.
        stream.SetOffline();
        Assert.Equal("offline", (await ReceiveJson(ws, timeout.Token)).GetProperty("type").GetString());
        stream.OnTracks(clip.Tracks);
        stream.OnAccessUnit(units[3]); // not a keyframe: the new decode must not start here
        foreach (var u in units.Take(2)) stream.OnAccessUnit(u);
        Assert.Equal("init", (await ReceiveJson(ws, timeout.Token)).GetProperty("type").GetString());
        Assert.Equal(["ftyp", "moov"], BoxWalker.Walk(await ReceiveBinary(ws, timeout.Token)).Select(b => b.Type));
        var restarted = BoxWalker.Walk(await ReceiveBinary(ws, timeout.Token));
        Assert.Equal(units[0].Data.ToArray(), restarted[1].Payload.ToArray());
        Assert.Equal(0ul, restarted[0].Find("traf/tfdt").U64(4));

        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
        for (var i = 0; i < 50 && stream.ViewerCount > 0; i++) await Task.Delay(50);
        Assert.Equal(0, stream.ViewerCount); // the relay let go of the viewer
    }

    [Fact]
    public async Task A_viewer_over_the_streams_limit_gets_503_and_an_unknown_camera_404()
    {
        await using var host = await BrowserTestHost.StartAsync(limits: new MediaStreamLimits { MaxViewersPerStream = 1 });
        var stream = host.Registry.GetOrAdd("gw1", "door");
        stream.OnTracks([Video]);
        var cookies = await host.LogInAsync();
        using var first = new ClientWebSocket();
        first.Options.Cookies = cookies;
        await first.ConnectAsync(host.WebSocketUri("gw1", "door"), CancellationToken.None);
        using var second = new ClientWebSocket();
        second.Options.Cookies = cookies;
        second.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => second.ConnectAsync(host.WebSocketUri("gw1", "door"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.HttpStatusCode);
        Assert.Equal(1, stream.ViewerCount);
        using var unknown = new ClientWebSocket();
        unknown.Options.Cookies = cookies;
        unknown.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => unknown.ConnectAsync(host.WebSocketUri("gw1", "nope"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.NotFound, unknown.HttpStatusCode);
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task H265_cameras_get_a_page_pointing_to_rtsp_and_the_socket_says_unsupported()
    {
        await using var host = await BrowserTestHost.StartAsync(o => o.RtspPort = 8555);
        var stream = host.Registry.GetOrAdd("gw1", "yard");
        var clip = TestClips.H265(seconds: 1);
        stream.OnTracks(clip.Tracks);
        foreach (var u in clip.Units.Take(3)) stream.OnAccessUnit(u);
        var cookies = await host.LogInAsync();
        using var client = host.CreateClient(cookies);
        var html = await client.GetStringAsync("/play/gw1/yard");
        Assert.Contains("<code id=\"rtsp-url\">rtsp://127.0.0.1:8555/gw1/yard</code>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<video", html, StringComparison.Ordinal);

        using var ws = new ClientWebSocket();
        ws.Options.Cookies = cookies;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await ws.ConnectAsync(host.WebSocketUri("gw1", "yard"), timeout.Token);
        var msg = await ReceiveJson(ws, timeout.Token);
        Assert.Equal("unsupported", msg.GetProperty("type").GetString());
        Assert.Equal("rtsp://127.0.0.1:8555/gw1/yard", msg.GetProperty("rtsp").GetString());
    }

    private static async Task<(WebSocketMessageType Type, byte[] Data)> Receive(WebSocket ws, CancellationToken ct)
    {
        using var ms = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var r = await ws.ReceiveAsync(buffer, ct);
            ms.Write(buffer, 0, r.Count);
            if (r.EndOfMessage) return (r.MessageType, ms.ToArray());
        }
    }

    private static async Task<JsonElement> ReceiveJson(WebSocket ws, CancellationToken ct)
    {
        var (type, data) = await Receive(ws, ct);
        Assert.Equal(WebSocketMessageType.Text, type);
        return JsonDocument.Parse(data).RootElement.Clone();
    }

    private static async Task<byte[]> ReceiveBinary(WebSocket ws, CancellationToken ct)
    {
        var (type, data) = await Receive(ws, ct);
        Assert.Equal(WebSocketMessageType.Binary, type);
        return data;
    }
}
