using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Pinhole.EdgeHost.Tests.Support;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Web;

/// <summary>The page's live status WebSocket (<c>api/status/live</c>) and the page listener the reserved "ui" tunnel dials.</summary>
public class EdgePageLiveStatusTests
{
    [Fact]
    public async Task Live_status_pushes_the_status_json_to_a_logged_in_page_and_refuses_everyone_else()
    {
        await using var host = await EdgeTestHost.StartAsync();
        var cookies = new CookieContainer();
        using var client = new HttpClient(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = host.BaseAddress };
        var live = new Uri($"ws://{host.BaseAddress.Authority}/api/status/live");
        var origin = host.BaseAddress.GetLeftPart(UriPartial.Authority);

        // Not logged in: 401.
        Assert.Equal(HttpStatusCode.Unauthorized, await RefusedAsync(live, cookie: null, origin));

        var login = await client.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("password", TempConfigDir.Password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var cookie = cookies.GetCookieHeader(host.BaseAddress);
        Assert.Contains("pinhole_session=", cookie, StringComparison.Ordinal);

        // Logged in but from another site's page (or with no Origin at all): 403.
        Assert.Equal(HttpStatusCode.Forbidden, await RefusedAsync(live, cookie, "http://evil.example"));
        Assert.Equal(HttpStatusCode.Forbidden, await RefusedAsync(live, cookie, origin: null));
        // Not an upgrade: 400.
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync(new Uri("/api/status/live", UriKind.Relative))).StatusCode);

        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Cookie", cookie);
        ws.Options.SetRequestHeader("Origin", origin);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await ws.ConnectAsync(live, timeout.Token);
        for (var i = 0; i < 2; i++)
        {
            var status = JsonNode.Parse(await WebSocketMessages.ReceiveTextAsync(ws, timeout.Token))!;
            Assert.Equal("gw1", status["deviceId"]!.GetValue<string>());
            Assert.NotNull(status["pipelines"]!.AsArray());
        }

        // Logging out ends the feed.
        var page = await client.GetStringAsync(new Uri("/", UriKind.Relative));
        var csrf = System.Text.RegularExpressions.Regex.Match(page, "<meta name=\"csrf-token\" content=\"([^\"]+)\">").Groups[1].Value;
        Assert.NotEmpty(csrf);
        Assert.Equal(HttpStatusCode.Redirect, (await client.PostAsync(new Uri("/logout", UriKind.Relative), new FormUrlEncodedContent([new("csrf", csrf)]))).StatusCode);
        while (true)
        {
            var buffer = new byte[64 * 1024];
            var r = await ws.ReceiveAsync(buffer, timeout.Token);
            if (r.MessageType != WebSocketMessageType.Close) continue;
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, r.CloseStatus);
            break;
        }
    }

    [Fact]
    public async Task The_page_listener_is_found_as_a_loopback_endpoint_for_the_ui_tunnel()
    {
        await using var host = await EdgeTestHost.StartAsync();
        var page = EdgeApp.PageEndPoint(host.App.Services);
        Assert.NotNull(page);
        Assert.True(IPAddress.IsLoopback(page.Address), page.ToString());
        Assert.Equal(host.BaseAddress.Port, page.Port);
    }

    private static async Task<HttpStatusCode> RefusedAsync(Uri uri, string? cookie, string? origin)
    {
        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        if (cookie is not null) ws.Options.SetRequestHeader("Cookie", cookie);
        if (origin is not null) ws.Options.SetRequestHeader("Origin", origin);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(uri, CancellationToken.None));
        return ws.HttpStatusCode;
    }
}
