using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenQA.Selenium;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 15 in the NAT namespaces: the device (edge) in the LAN behind a MASQUERADE router, the relay and the
/// admin (or publisher) in the WAN. The device page through <c>/devices/gw1/ui/</c> from the WAN, and media
/// published in the WAN decoded in the LAN from the edge's RTSP server. The loopback versions
/// (<see cref="DevicePageTests"/>, <see cref="InboundMediaTests"/>) check the details; these check that it all
/// holds when the only way between WAN and LAN is the device's outbound uplink. The test process acts as a WAN
/// host through <see cref="NamespaceForwarder"/>s whose sockets are made in the WAN namespace.
/// </summary>
[Collection(EndToEnd.Collection)]
public sealed partial class TunnelNatTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private const string Prefix = DevicePageTests.Prefix;
    private const string Admin = "admin";
    private const string AdminPassword = "admin-pass";
    private const string EdgePagePassword = "edge-page-password"; // EndToEnd.WriteEdgeConfig's
    private const string Publisher = "publisher";
    private const string PublisherPassword = "pub-pass";
    private const string LanUser = "nvr";
    private const string LanPassword = "lan-pass";
    // Fresh namespaces: fixed ports are free in them.
    private const int HttpPort = 8080, RtspPort = 8554, WebPort = 8081, LanRtspPort = 8554;

    [RequiresFact(Needs.NetworkNamespaces)]
    public async Task From_the_wan_an_admin_logs_in_to_the_device_page_sees_live_status_and_saves_a_change()
    {
        await using var stack = await NatStack.StartAsync("page-nat", output);
        var origin = stack.HttpUri.GetLeftPart(UriPartial.Authority);
        var cookies = new CookieContainer();
        using var http = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = stack.HttpUri, Timeout = Wait };
        http.DefaultRequestHeaders.Add("Origin", origin);
        using (var relayLogin = await http.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", Admin), new("password", AdminPassword)])))
            Assert.Equal(HttpStatusCode.Redirect, relayLogin.StatusCode);

        // The device's own login form through the uplink, then its login.
        Assert.Contains("<form method=\"post\" action=\"login\"", await http.GetStringAsync(new Uri(Prefix + "/", UriKind.Relative)), StringComparison.Ordinal);
        using (var login = await http.PostAsync(new Uri(Prefix + "/login", UriKind.Relative), new FormUrlEncodedContent([new("password", EdgePagePassword)])))
        {
            Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
            Assert.Equal(Prefix + "/", login.Headers.Location!.OriginalString);
        }
        var page = await http.GetStringAsync(new Uri(Prefix + "/", UriKind.Relative));
        var csrf = DevicePageTests.CsrfMeta().Match(page).Groups[1].Value;
        Assert.NotEmpty(csrf);

        // Live status: the page's WebSocket, from the WAN through relay, uplink and NAT.
        using var live = new ClientWebSocket();
        live.Options.SetRequestHeader("Cookie", cookies.GetCookieHeader(new Uri(stack.HttpUri, Prefix + "/api/status/live")));
        live.Options.SetRequestHeader("Origin", origin);
        using var timeout = new CancellationTokenSource(Wait);
        var clock = Stopwatch.StartNew();
        await live.ConnectAsync(new Uri($"ws://127.0.0.1:{stack.HttpPort}{Prefix}/api/status/live"), timeout.Token);
        var first = JsonNode.Parse(await WebSocketMessages.ReceiveTextAsync(live, timeout.Token))!;
        var second = JsonNode.Parse(await WebSocketMessages.ReceiveTextAsync(live, timeout.Token))!;
        output.WriteLine($"live status from the WAN: two messages {clock.Elapsed.TotalMilliseconds:0} ms after the upgrade began");
        Assert.Equal("gw1", first["deviceId"]!.GetValue<string>());
        Assert.Contains(second["pipelines"]!.AsArray(), p => p!["name"]!.GetValue<string>() == "uplink");

        // Change a setting and save: a camera is added on the device; then put back.
        var original = await http.GetStringAsync(new Uri(Prefix + "/api/config", UriKind.Relative));
        var changed = JsonNode.Parse(original)!.AsObject();
        var before = changed["cameras"]?.AsArray().DeepClone() ?? new JsonArray();
        var restore = JsonNode.Parse(original)!.AsObject();
        restore["cameras"] = before;
        changed["cameras"] = new JsonArray([.. before.AsArray().Select(c => c!.DeepClone()), new JsonObject { ["name"] = "lobby", ["source"] = "rtsp://127.0.0.1:9/nothing-here" }]);
        var saved = await DevicePageTests.SaveAsync(http, csrf, changed.ToJsonString());
        Assert.True(saved["saved"]!.GetValue<bool>(), saved.ToJsonString() + "\n" + stack.Logs);
        Assert.Contains(saved["started"]!.AsArray(), n => n!.GetValue<string>() == "camera/lobby");
        Assert.Contains("\"lobby\"", await File.ReadAllTextAsync(stack.EdgeConfig), StringComparison.Ordinal);
        while (true)
        {
            var status = JsonNode.Parse(await WebSocketMessages.ReceiveTextAsync(live, timeout.Token))!;
            if (status["pipelines"]!.AsArray().Any(p => p!["name"]!.GetValue<string>() == "camera/lobby")) break;
        }
        var restored = await DevicePageTests.SaveAsync(http, csrf, restore.ToJsonString());
        Assert.True(restored["saved"]!.GetValue<bool>(), restored.ToJsonString());
        Assert.DoesNotContain("\"lobby\"", await File.ReadAllTextAsync(stack.EdgeConfig), StringComparison.Ordinal);
        await live.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);

        // A viewer without admin: 403, the page and its WebSocket alike; an unknown device: 404.
        using var plain = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = stack.HttpUri, Timeout = Wait };
        var viewer = await LoginCookieAsync(plain, EndToEnd.ViewerUser, EndToEnd.ViewerPassword);
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Prefix + "/", UriKind.Relative)))
        {
            request.Headers.Add("Cookie", viewer);
            using var response = await plain.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("viewer is not an admin", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var ws = new ClientWebSocket())
        {
            ws.Options.SetRequestHeader("Cookie", viewer);
            ws.Options.CollectHttpResponseDetails = true;
            await Assert.ThrowsAnyAsync<WebSocketException>(() => ws.ConnectAsync(new Uri($"ws://127.0.0.1:{stack.HttpPort}{Prefix}/api/status/live"), timeout.Token));
            Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);
        }
        var adminCookie = string.Join("; ", cookies.GetAllCookies().Where(c => c.Name == "pinhole_session").Select(c => $"{c.Name}={c.Value}"));
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/devices/nope/ui/", UriKind.Relative)))
        {
            request.Headers.Add("Cookie", adminCookie);
            using var response = await plain.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Contains("no device &quot;nope&quot;", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [RequiresFact(Needs.NetworkNamespaces | Needs.Chromium)]
    public async Task From_the_wan_chromium_shows_the_device_page_with_its_live_status()
    {
        await using var stack = await NatStack.StartAsync("page-nat-chromium", output);
        using var browser = Chromium.Start();
        browser.Navigate(new Uri(stack.HttpUri, Prefix + "/"));
        Assert.Contains("/login?next=", browser.Driver.Url, StringComparison.Ordinal);
        browser.Driver.FindElement(By.Name("user")).SendKeys(Admin);
        browser.Driver.FindElement(By.Name("password")).SendKeys(AdminPassword);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync($"location.pathname === '{Prefix}/' && document.getElementById('login') !== null", Wait);
        browser.Driver.FindElement(By.Id("password")).SendKeys(EdgePagePassword);
        browser.Driver.FindElement(By.Id("login")).Click();
        await browser.WaitForAsync($"location.pathname === '{Prefix}/' && document.getElementById('status-view') !== null", Wait);
        var messages = await browser.WaitForAsync("document.body.dataset.live === 'open' && Number(document.body.dataset.liveMessages || 0) >= 2 && document.body.dataset.liveMessages", Wait);
        output.WriteLine($"Chromium in the WAN: live status messages received: {messages}");
        Assert.Equal("gw1", browser.Execute<string>("return document.getElementById('device-id').textContent;"));
        Assert.True(browser.Execute<bool>("return document.querySelector('#pipelines tr[data-pipeline=\"uplink\"]') !== null;"));
        var errors = browser.ConsoleMessages().Where(m => m.StartsWith("SEVERE", StringComparison.Ordinal) && !m.Contains("favicon", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [RequiresFact(Needs.NetworkNamespaces | Needs.Ffmpeg)]
    public async Task Ffmpeg_in_the_wan_publishes_and_ffprobe_in_the_lan_decodes_it_from_the_edge()
    {
        await using var stack = await NatStack.StartAsync("inbound-nat", output, inbound: true);
        // 6 s of 320x240 H.264 (a keyframe a second) with 48 kHz AAC, looped by the publisher.
        var clip = Path.Combine(stack.Dir, "clip.mp4");
        await Pinhole.Testing.Command.RunCheckedAsync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac", "-b:a", "64k", "-y", clip], TimeSpan.FromSeconds(60));

        // ffmpeg runs in the WAN namespace (ip netns exec replaces itself with ffmpeg: this is ffmpeg's process).
        var ffmpegLog = new StringBuilder();
        var wan = stack.Nat.WanAddress;
        using var ffmpeg = Process.Start(new ProcessStartInfo("ip",
            ["netns", "exec", stack.Nat.Wan, "ffmpeg", "-hide_banner", "-loglevel", "warning", "-re", "-stream_loop", "-1", "-i", clip, "-c", "copy",
             "-f", "rtsp", "-rtsp_transport", "tcp", $"rtsp://{Publisher}:{PublisherPassword}@{wan}:{RtspPort}/{EndToEnd.Device}/in/lobby"])
        {
            RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false,
        })!;
        ffmpeg.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (ffmpegLog) ffmpegLog.AppendLine(e.Data); };
        ffmpeg.BeginErrorReadLine();
        try
        {
            // ffprobe in the LAN namespace, on the edge's RTSP server.
            var url = new Uri($"rtsp://{LanUser}:{LanPassword}@{stack.Nat.LanAddress}:{LanRtspPort}/lobby");
            var probe = await EndToEnd.ProbeUntilPlayingAsync(url, TimeSpan.FromSeconds(45), frames: 50, networkNamespace: stack.Nat.Lan);
            output.WriteLine($"published in the WAN, decoded in the LAN: {probe.Video?.CodecName} {probe.Video?.Width}x{probe.Video?.Height} {probe.Video?.FramesDecoded} frames, " +
                $"{probe.Audio?.CodecName} {probe.Audio?.SampleRate} Hz {probe.Audio?.FramesDecoded} frames in {probe.Elapsed.TotalSeconds:0.0} s");
            string Log() { lock (ffmpegLog) return probe + "\n--- ffmpeg ---\n" + ffmpegLog + "\n" + stack.Logs; }
            Assert.True(probe.Succeeded, Log());
            Assert.Equal("h264", probe.Video?.CodecName);
            Assert.Equal(320, probe.Video!.Width);
            Assert.True(probe.Video.FramesDecoded >= 50, Log());
            Assert.Equal("aac", probe.Audio?.CodecName);
            Assert.True(probe.Audio!.FramesDecoded > 0, Log());
            Assert.Empty(probe.DecoderErrors);

            // The WAN cannot reach the LAN server itself: only the uplink crosses the NAT.
            var direct = await Ffprobe.ProbeAsync(url, new ProbeOptions { Timeout = TimeSpan.FromSeconds(8), NetworkNamespace = stack.Nat.Wan });
            Assert.False(direct.Succeeded, direct.ToString());
        }
        finally
        {
            try { ffmpeg.Kill(); } catch (InvalidOperationException) { }
            await ffmpeg.WaitForExitAsync();
        }
    }

    private static async Task<string> LoginCookieAsync(HttpClient http, string user, string password)
    {
        using var login = await http.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", user), new("password", password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return string.Join("; ", login.Headers.GetValues("Set-Cookie").Select(c => c.Split(';')[0]));
    }

    /// <summary>Relay in the WAN, edge in the LAN (no camera), the relay's HTTP port forwarded to the test's loopback;
    /// ready once the relay lists the device online.</summary>
    private sealed class NatStack : IAsyncDisposable
    {
        private NatTopology _nat = null!;
        private PeerProcess? _relay, _edge;
        private NamespaceForwarder? _http;

        public NatTopology Nat => _nat;
        public string Dir { get; private init; } = "";
        public string EdgeConfig { get; private set; } = "";
        public int HttpPort => _http!.Port;
        public Uri HttpUri => new($"http://127.0.0.1:{_http!.Port}/");
        public string Logs => EndToEnd.Describe(_edge, _relay);

        public static async Task<NatStack> StartAsync(string name, ITestOutputHelper output, bool inbound = false)
        {
            var stack = new NatStack { Dir = EndToEnd.NewWorkDir(name) };
            try
            {
                stack._nat = await NatTopology.CreateAsync();
                var wan = stack._nat.WanAddress.ToString();
                var relayConfig = EndToEnd.WriteRelayConfig(stack.Dir, wan, TunnelNatTests.HttpPort, RtspPort, new Dictionary<string, object>
                {
                    ["viewers"] = new object[]
                    {
                        new { user = EndToEnd.ViewerUser, password = EndToEnd.ViewerPassword },
                        new { user = Admin, password = AdminPassword, role = "admin" },
                        new { user = Publisher, password = PublisherPassword, publish = true },
                    },
                });
                stack._relay = await stack._nat.StartInAsync(stack._nat.Wan, EndToEnd.RelayStartInfo(relayConfig, output));
                stack.EdgeConfig = EndToEnd.WriteEdgeConfig(stack.Dir, [$"ws://{wan}:{TunnelNatTests.HttpPort}/uplink"], "rtsp://127.0.0.1:9/none", WebPort);
                var json = JsonNode.Parse(File.ReadAllText(stack.EdgeConfig))!.AsObject();
                json["cameras"] = new JsonArray();
                if (inbound)
                    json["rtspServer"] = JsonNode.Parse(JsonSerializer.Serialize(new { listen = $"{stack._nat.LanAddress}:{LanRtspPort}", users = new[] { new { name = LanUser, password = LanPassword } } }));
                File.WriteAllText(stack.EdgeConfig, json.ToJsonString());
                stack._edge = await stack._nat.StartInAsync(stack._nat.Lan, EndToEnd.EdgeStartInfo(stack.EdgeConfig, WebPort, output));
                var nat = stack._nat;
                stack._http = new NamespaceForwarder(() => nat.ConnectFromAsync(nat.Wan, nat.WanAddress, TunnelNatTests.HttpPort, TimeSpan.FromSeconds(10)));

                // Ready when the uplink is up: the device is online in the relay's admin API.
                using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = stack.HttpUri, Timeout = Wait };
                var cookie = await LoginCookieAsync(http, Admin, AdminPassword);
                var deadline = DateTime.UtcNow + Wait;
                while (true)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"/api/devices/{EndToEnd.Device}", UriKind.Relative));
                    request.Headers.Add("Cookie", cookie);
                    using var response = await http.SendAsync(request);
                    if ((await response.Content.ReadAsStringAsync()).Contains("\"online\":true", StringComparison.Ordinal)) break;
                    if (DateTime.UtcNow > deadline) throw new TimeoutException("the edge in the LAN did not connect to the relay in the WAN\n" + stack.Logs);
                    await Task.Delay(200);
                }
                return stack;
            }
            catch
            {
                await stack.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_http is not null) await _http.DisposeAsync();
            if (_edge is not null) await _edge.DisposeAsync();
            if (_relay is not null) await _relay.DisposeAsync();
            if (_nat is not null) await _nat.DisposeAsync();
            try { Directory.Delete(Dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
