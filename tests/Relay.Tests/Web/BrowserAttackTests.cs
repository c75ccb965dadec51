using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Web;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Web;

/// <summary>The browser login and session endpoints under attack: lockout of a named user, cross-site logout, /metrics.</summary>
public class BrowserAttackTests
{
    private static FormUrlEncodedContent LoginForm(string user, string password) => new([new("user", user), new("password", password)]);

    // Any 127.x.y.z is loopback on Linux: each address is another client.
    private static HttpClient ClientFrom(Uri baseUri, string address, CookieContainer cookies) =>
        new(LoopbackClient.Handler(address, cookies)) { BaseAddress = baseUri };

    [Fact]
    public async Task A_guesser_cannot_lock_the_owner_out_of_a_browser_that_logged_in_before()
    {
        await using var host = await BrowserTestHost.StartAsync(o => { o.FreeLoginFailures = 3; o.FirstLockout = TimeSpan.FromMinutes(1); });
        var ownerCookies = new CookieContainer();
        using (var owner = ClientFrom(host.BaseUri, "127.0.0.3", ownerCookies))
        {
            using var r = await owner.PostAsync("/login", LoginForm(BrowserTestHost.User, BrowserTestHost.Password));
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
            Assert.NotNull(ownerCookies.GetCookies(new Uri(host.BaseUri, "/login"))[RelaySignIn.DeviceCookieName]);
            using var bye = await owner.PostAsync("/logout", new FormUrlEncodedContent([new(RelaySignIn.TokenField, await RelayAntiforgery.TokenAsync(owner, "/"))]));
            Assert.Equal("/login", bye.Headers.Location?.OriginalString);
        }

        // Two guesses from each of eight addresses: under every per-address limit, over the per-user one.
        var statuses = new List<HttpStatusCode>();
        for (var a = 10; a < 18; a++)
        {
            using var attacker = ClientFrom(host.BaseUri, $"127.0.0.{a}", new CookieContainer());
            for (var i = 0; i < 2; i++)
            {
                using var r = await attacker.PostAsync("/login", LoginForm(BrowserTestHost.User, $"guess{a}-{i}"));
                statuses.Add(r.StatusCode);
            }
        }
        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.Unauthorized)); // 3 free misses; the 4th locks the user
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);

        // A stranger with the right password is held (a lock that the right password lifts would be an oracle) ...
        using (var stranger = ClientFrom(host.BaseUri, "127.0.0.40", new CookieContainer()))
        using (var r = await stranger.PostAsync("/login", LoginForm(BrowserTestHost.User, BrowserTestHost.Password)))
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);

        // ... the owner's browser, now on another network, gets in.
        using (var owner = ClientFrom(host.BaseUri, "127.0.0.41", ownerCookies))
        using (var r = await owner.PostAsync("/login", LoginForm(BrowserTestHost.User, BrowserTestHost.Password)))
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);

        // Guessing through a device cookie is slowed all the same.
        var stolen = new CookieContainer();
        stolen.Add(ownerCookies.GetCookies(new Uri(host.BaseUri, "/login")));
        using var thief = ClientFrom(host.BaseUri, "127.0.0.42", stolen);
        var thiefStatuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            using var r = await thief.PostAsync("/login", LoginForm(BrowserTestHost.User, "thief" + i));
            thiefStatuses.Add(r.StatusCode);
        }
        Assert.Equal(HttpStatusCode.TooManyRequests, thiefStatuses[^1]);
    }

    [Fact]
    public async Task A_logout_link_on_another_site_does_not_log_the_viewer_out()
    {
        await using var host = await BrowserTestHost.StartAsync();
        var cookies = await host.LogInAsync();
        using var client = host.CreateClient(cookies);
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/logout"))
        {
            request.Headers.Add("Sec-Fetch-Site", "cross-site");
            using var r = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode); // a page with a button, nothing done
            Assert.Contains("method=\"post\" action=\"/logout\"", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var r = await client.GetAsync("/")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/logout"))
        {
            request.Headers.Add("Sec-Fetch-Site", "same-origin");
            using var r = await client.SendAsync(request);
            Assert.Equal("/login", r.Headers.Location!.OriginalString);
        }
        using (var r = await client.GetAsync("/")) Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
    }

    [Fact]
    public async Task Metrics_need_an_API_token_or_an_admin_session_unless_the_config_makes_them_public()
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-metrics-").FullName;
        try
        {
            var config = new RelayConfig
            {
                Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = dir,
                Devices = [new DeviceConfig { Id = "secret-device-name", Token = "0123456789abcdef" }],
                Viewers = [new ViewerConfig { User = "bob", Password = "hunter2" }, new ViewerConfig { User = "ann", Password = "s3cret-admin", Role = "admin" }],
            };
            await using var relay = await RelayApp.StartAsync(config);
            async Task<(HttpStatusCode Status, string Body)> Metrics(HttpClient client)
            {
                using var r = await client.GetAsync(new Uri("/metrics", UriKind.Relative));
                return (r.StatusCode, await r.Content.ReadAsStringAsync());
            }
            HttpClient Client(CookieContainer? cookies = null) =>
                new(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies ?? new CookieContainer() }) { BaseAddress = relay.HttpUri };

            using var anonymous = Client();
            var (status, body) = await Metrics(anonymous);
            Assert.Equal(HttpStatusCode.Unauthorized, status);
            Assert.DoesNotContain("pinhole_", body, StringComparison.Ordinal);
            anonymous.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "pht_not-a-token");
            Assert.Equal(HttpStatusCode.Unauthorized, (await Metrics(anonymous)).Status);

            // A viewer may watch, but the series name every device and camera: 403.
            using var viewer = Client();
            using (var login = await viewer.PostAsync(new Uri("/login", UriKind.Relative), LoginForm("bob", "hunter2")))
                Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
            (status, body) = await Metrics(viewer);
            Assert.Equal(HttpStatusCode.Forbidden, status);
            Assert.DoesNotContain("secret-device-name", body, StringComparison.Ordinal);

            using var admin = Client();
            using (var login = await admin.PostAsync(new Uri("/login", UriKind.Relative), LoginForm("ann", "s3cret-admin")))
                Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
            (status, body) = await Metrics(admin);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Contains("pinhole_relay_viewers{} 0", body, StringComparison.Ordinal);

            // A scraper: an API token from `pinhole-relay tokens add`.
            var token = Pinhole.Relay.Fleet.ApiTokens.Create(relay.Services.GetRequiredService<Pinhole.Relay.Fleet.IFleetStore>(), "prometheus", DateTimeOffset.UtcNow);
            using var scraper = Client();
            scraper.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            (status, body) = await Metrics(scraper);
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Contains("pinhole_relay_viewers{} 0", body, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
