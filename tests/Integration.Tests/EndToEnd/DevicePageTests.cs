using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenQA.Selenium;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// The device's own page from the WAN, <c>/devices/gw1/ui/</c> (issue #15, docs/tunnels.md "The device page"):
/// a relay and an edge as real processes (<see cref="TunnelStack"/>), an admin's browser or HTTP client on the
/// relay only — the edge's page port is used directly only to check what a save did on the device.
/// </summary>
[Collection(EndToEnd.Collection)]
public sealed partial class DevicePageTests(TunnelStack stack, ITestOutputHelper output) : IClassFixture<TunnelStack>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    internal const string Prefix = "/devices/gw1/ui";

    [GeneratedRegex("<meta name=\"csrf-token\" content=\"([^\"]+)\">")]
    internal static partial Regex CsrfMeta();

    [Fact]
    public async Task An_admin_logs_in_to_the_device_page_sees_live_status_and_saves_a_change_through_the_relay()
    {
        stack.Output = output;
        var cookies = new CookieContainer();
        using var http = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = stack.HttpUri, Timeout = Wait };
        var origin = stack.HttpUri.GetLeftPart(UriPartial.Authority);
        http.DefaultRequestHeaders.Add("Origin", origin);
        using (var relayLogin = await http.PostAsync(new Uri("/login", UriKind.Relative),
            new FormUrlEncodedContent([new("user", TunnelStack.AdminUser), new("password", TunnelStack.AdminPassword)])))
            Assert.Equal(HttpStatusCode.Redirect, relayLogin.StatusCode);

        // The bare prefix gets its slash; then the device's own login form, with URLs relative to the prefix.
        using (var bare = await http.GetAsync(new Uri(Prefix, UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, bare.StatusCode);
            Assert.Equal(Prefix + "/", bare.Headers.Location!.OriginalString);
        }
        var form = await http.GetStringAsync(new Uri(Prefix + "/", UriKind.Relative));
        Assert.Contains("<form method=\"post\" action=\"login\"", form, StringComparison.Ordinal);
        Assert.Contains("href=\"app.css\"", form, StringComparison.Ordinal);

        // A wrong password is the device's answer (its login applies on top of the relay's admin check).
        using (var wrong = await http.PostAsync(new Uri(Prefix + "/login", UriKind.Relative), new FormUrlEncodedContent([new("password", "not-it")])))
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);

        using (var login = await http.PostAsync(new Uri(Prefix + "/login", UriKind.Relative), new FormUrlEncodedContent([new("password", TunnelStack.EdgePagePassword)])))
        {
            Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
            Assert.Equal(Prefix + "/", login.Headers.Location!.OriginalString);
            var setCookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
            Assert.StartsWith("ui_pinhole_session=", setCookie, StringComparison.Ordinal);
            Assert.Contains($"path={Prefix}/", setCookie, StringComparison.Ordinal);
            Assert.DoesNotContain("domain", setCookie, StringComparison.OrdinalIgnoreCase);
        }
        // Two sessions side by side: the relay's on /, the device's under the prefix.
        var all = cookies.GetAllCookies();
        Assert.Contains(all, c => c is { Name: "pinhole_session", Path: "/" });
        Assert.Contains(all, c => c is { Name: "ui_pinhole_session", Path: Prefix + "/" });

        var page = await http.GetStringAsync(new Uri(Prefix + "/", UriKind.Relative));
        var csrf = CsrfMeta().Match(page).Groups[1].Value;
        Assert.NotEmpty(csrf);
        Assert.Contains("src=\"app.js\"", page, StringComparison.Ordinal);
        Assert.Contains("api/status/live", await http.GetStringAsync(new Uri(Prefix + "/app.js", UriKind.Relative)), StringComparison.Ordinal);

        // Live status: the page's WebSocket, upgraded through the relay and the tunnel.
        using var live = new ClientWebSocket();
        live.Options.SetRequestHeader("Cookie", cookies.GetCookieHeader(new Uri(stack.HttpUri, Prefix + "/api/status/live")));
        live.Options.SetRequestHeader("Origin", origin);
        using var timeout = new CancellationTokenSource(Wait);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await live.ConnectAsync(stack.WebSocketUri(Prefix + "/api/status/live"), timeout.Token);
        var first = JsonNode.Parse(await WebSocketMessages.ReceiveTextAsync(live, timeout.Token))!;
        output.WriteLine($"live status WebSocket through the relay: upgraded and first message in {clock.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal("gw1", first["deviceId"]!.GetValue<string>());
        Assert.Contains(first["pipelines"]!.AsArray(), p => p!["name"]!.GetValue<string>() == "uplink");

        // What a status fetch costs through relay, YARP, uplink and page (kept-alive streams), for the record.
        var times = new List<double>();
        for (var i = 0; i < 20; i++)
        {
            clock.Restart();
            using var response = await http.GetAsync(new Uri(Prefix + "/api/status", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsByteArrayAsync();
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        output.WriteLine($"GET api/status through /devices/gw1/ui/, 20 in a row: median {times[10]:0.0} ms, max {times[^1]:0.0} ms");

        // Change a setting and save: a camera is added on the device.
        var original = await http.GetStringAsync(new Uri(Prefix + "/api/config", UriKind.Relative));
        var changed = JsonNode.Parse(original)!.AsObject();
        // The stack's edge has no cameras (the section reads null): the change adds one, the restore empties the list again.
        var before = changed["cameras"]?.AsArray().DeepClone() ?? new JsonArray();
        var restore = JsonNode.Parse(original)!.AsObject();
        restore["cameras"] = before;
        changed["cameras"] = new JsonArray([.. before.AsArray().Select(c => c!.DeepClone()), new JsonObject { ["name"] = "lobby", ["source"] = "rtsp://127.0.0.1:9/nothing-here" }]);
        var saved = await SaveAsync(http, csrf, changed.ToJsonString());
        Assert.True(saved["saved"]!.GetValue<bool>(), saved.ToJsonString());
        Assert.Contains(saved["started"]!.AsArray(), n => n!.GetValue<string>() == "camera/lobby");
        try
        {
            // It took effect on the device: in its edge.json, on its own port, and in the live status through the relay.
            Assert.Contains("\"lobby\"", await File.ReadAllTextAsync(Path.Combine(stack.Dir, "edge.json")), StringComparison.Ordinal);
            Assert.Contains("pipeline=\"camera/lobby\"", await stack.EdgeMetricsAsync(), StringComparison.Ordinal);
            while (true)
            {
                var status = JsonNode.Parse(await WebSocketMessages.ReceiveTextAsync(live, timeout.Token))!;
                if (status["pipelines"]!.AsArray().Any(p => p!["name"]!.GetValue<string>() == "camera/lobby")) break;
            }
        }
        finally
        {
            var restored = await SaveAsync(http, csrf, restore.ToJsonString());
            Assert.True(restored["saved"]!.GetValue<bool>(), restored.ToJsonString());
        }
        await live.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);

        // A CSRF-less save through the relay is still the device's 403.
        using (var forged = new HttpRequestMessage(HttpMethod.Post, new Uri(Prefix + "/api/config", UriKind.Relative)) { Content = new StringContent(original, Encoding.UTF8, "application/json") })
            Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(forged)).StatusCode);

        // Each new stream to the page is audited with who and which device.
        var audit = await stack.Api.GetStringAsync(new Uri("/api/audit", UriKind.Relative));
        Assert.Contains("\"ui.open\"", audit, StringComparison.Ordinal);
        Assert.Contains("user:admin", audit, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_admins_reach_the_device_page_of_a_known_connected_device()
    {
        stack.Output = output;
        using var anonymous = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = stack.HttpUri, Timeout = Wait };
        // A browser without a relay session goes to the relay's login and comes back; a tool gets 401.
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Prefix + "/", UriKind.Relative)))
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/html"));
            using var browser = await anonymous.SendAsync(request);
            Assert.Equal(HttpStatusCode.Redirect, browser.StatusCode);
            Assert.Equal("/login?next=%2Fdevices%2Fgw1%2Fui%2F", browser.Headers.Location!.OriginalString);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri(Prefix + "/api/status", UriKind.Relative))).StatusCode);
        var (status, _) = await stack.RefusedUpgradeAsync(Prefix + "/api/status/live", token: null);
        Assert.Equal(HttpStatusCode.Unauthorized, status);

        // A viewer: 403, the page and its WebSocket alike.
        var viewer = await stack.LoginCookieAsync(TunnelStack.ViewerUser, TunnelStack.ViewerPassword);
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Prefix + "/", UriKind.Relative)))
        {
            request.Headers.Add("Cookie", viewer);
            using var response = await anonymous.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("viewer is not an admin", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        (status, _) = await stack.RefusedUpgradeAsync(Prefix + "/api/status/live", token: null, cookie: viewer);
        Assert.Equal(HttpStatusCode.Forbidden, status);

        // An admin's session used from another site's page: 403.
        var admin = await stack.LoginCookieAsync(TunnelStack.AdminUser, TunnelStack.AdminPassword);
        using (var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Prefix + "/login", UriKind.Relative)) { Content = new FormUrlEncodedContent([new("password", TunnelStack.EdgePagePassword)]) })
        {
            request.Headers.Add("Cookie", admin);
            request.Headers.Add("Origin", "http://evil.example");
            Assert.Equal(HttpStatusCode.Forbidden, (await anonymous.SendAsync(request)).StatusCode);
        }

        // Unknown device 404; a registered device that is not connected 503, with the reason on the page.
        using (var unknown = await stack.Api.GetAsync(new Uri("/devices/nope/ui/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Contains("no device &quot;nope&quot;", await unknown.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var offline = await stack.Api.GetAsync(new Uri($"/devices/{TunnelStack.OfflineDevice}/ui/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, offline.StatusCode);
            Assert.Contains("is offline", await offline.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // An admin's API token reaches the page (and the device's login still applies: not its cookie, no status).
        using (var page = await stack.Api.GetAsync(new Uri(Prefix + "/", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Contains("action=\"login\"", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await stack.Api.GetAsync(new Uri(Prefix + "/api/status", UriKind.Relative))).StatusCode);

        // The reserved name is not a tunnel the WebSocket endpoint opens.
        (status, var error) = await stack.RefusedUpgradeAsync("/devices/gw1/tunnels/ui", stack.Token);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("/devices/gw1/ui/", error, StringComparison.Ordinal);
    }

    [RequiresFact(Needs.Chromium)]
    public async Task Chromium_shows_the_device_page_with_its_live_status_websocket_through_the_relay_prefix()
    {
        stack.Output = output;
        using var browser = Chromium.Start();
        // Not logged in to the relay: its form first, then back to the device page.
        browser.Navigate(new Uri(stack.HttpUri, Prefix + "/"));
        Assert.Contains("/login?next=", browser.Driver.Url, StringComparison.Ordinal);
        browser.Driver.FindElement(By.Name("user")).SendKeys(TunnelStack.AdminUser);
        browser.Driver.FindElement(By.Name("password")).SendKeys(TunnelStack.AdminPassword);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync($"location.pathname === '{Prefix}/' && document.getElementById('login') !== null", Wait);

        // The device's own login form, through the prefix.
        browser.Driver.FindElement(By.Id("password")).SendKeys(TunnelStack.EdgePagePassword);
        browser.Driver.FindElement(By.Id("login")).Click();
        await browser.WaitForAsync($"location.pathname === '{Prefix}/' && document.getElementById('status-view') !== null", Wait);

        // Its live status WebSocket opens through the relay and delivers messages; the page shows them.
        var messages = await browser.WaitForAsync("document.body.dataset.live === 'open' && Number(document.body.dataset.liveMessages || 0) >= 2 && document.body.dataset.liveMessages", Wait);
        output.WriteLine($"live status messages received: {messages}");
        Assert.Equal("gw1", browser.Execute<string>("return document.getElementById('device-id').textContent;"));
        Assert.True(browser.Execute<bool>("return document.querySelector('#pipelines tr[data-pipeline=\"uplink\"]') !== null;"));
        // The config editor loaded through the prefix too.
        await browser.WaitForAsync("document.querySelectorAll('#relays input').length > 0", Wait);
        var errors = browser.ConsoleMessages().Where(m => m.StartsWith("SEVERE", StringComparison.Ordinal) && !m.Contains("favicon", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    /// <summary>Saves <paramref name="json"/> through the device page's config API under the relay prefix (shared with <see cref="TunnelNatTests"/>).</summary>
    internal static async Task<JsonNode> SaveAsync(HttpClient http, string csrf, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(Prefix + "/api/config", UriKind.Relative))
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-CSRF-Token", csrf);
        using var response = await http.SendAsync(request);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
    }
}
