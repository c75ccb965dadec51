using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Tests.Telemetry;
using Pinhole.Relay.Web;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Web;

/// <summary>
/// The data-protection key ring behind antiforgery tokens (docs/security.md): shared in PostgreSQL when several
/// relays serve one fleet, so a token a page of relay A carries is accepted by relay B; kept in dataDir/keys
/// for a single relay, so a restart keeps it. A change made with the session cookie and no token is refused 400.
/// </summary>
public sealed class SharedKeyRingTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static RelayConfig Config(string dataDir, DatabaseUrl? database) => new()
    {
        Http = "http://127.0.0.1:0",
        Rtsp = "127.0.0.1:0",
        DataDir = dataDir,
        Database = database ?? DatabaseUrl.Sqlite,
        Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
        Viewers = [new ViewerConfig { User = "alice", Password = "alice-pass", Role = ViewerRoles.Admin }],
    };

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    private static HttpRequestMessage AddDevice(RelayApp relay, string id)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(relay.HttpUri, "/api/devices")) { Content = Json($$"""{ "id": "{{id}}" }""") };
        request.Headers.Add("Origin", relay.HttpUri.GetLeftPart(UriPartial.Authority));
        return request;
    }

    private static async Task<IReadOnlyList<string>> DeviceIdsAsync(HttpClient http, RelayApp relay) =>
        [.. JsonNode.Parse(await http.GetStringAsync(new Uri(relay.HttpUri, "/api/devices")))!.AsArray().Select(d => d!["id"]!.GetValue<string>())];

    [RequiresFact(Needs.Postgres)]
    public async Task A_token_from_relay_A_is_accepted_by_relay_B_and_a_change_without_one_is_refused_400_and_changes_nothing()
    {
        var server = postgres.Server!;
        await server.CreateDatabaseAsync("keyring");
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl("keyring"), out var url, out var error), error);
        var dirA = Directory.CreateTempSubdirectory("pinhole-keyring-a-").FullName;
        var dirB = Directory.CreateTempSubdirectory("pinhole-keyring-b-").FullName;
        // Started at the same moment against the empty database: they must still end up with one key between them.
        var relays = await Task.WhenAll(RelayApp.StartAsync(Config(dirA, url)), RelayApp.StartAsync(Config(dirB, url)));
        await using var a = relays[0];
        await using var b = relays[1];
        Assert.Single(a.Services.GetRequiredService<PostgresFleetStore>().GetAllElements());
        Assert.Equal(
            a.Services.GetRequiredService<IKeyManager>().GetAllKeys().Select(k => k.KeyId).Order(),
            b.Services.GetRequiredService<IKeyManager>().GetAllKeys().Select(k => k.KeyId).Order());
        Assert.False(Directory.Exists(Path.Combine(dirA, RelaySignIn.KeyRingDirectory)), "with a database the key ring is not kept in dataDir");

        // One browser: the cookies of 127.0.0.1 go to both relays (cookies are not per port).
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies }) { BaseAddress = a.HttpUri, Timeout = TimeSpan.FromSeconds(30) };
        using (var login = await browser.PostAsync(new Uri(a.HttpUri, "/login"), new FormUrlEncodedContent([new("user", "alice"), new("password", "alice-pass")])))
            Assert.Equal(HttpStatusCode.OK, login.StatusCode); // several relays: a "continue" page rather than a 302
        var tokenFromA = await RelayAntiforgery.TokenAsync(browser);

        // Relay B, the session cookie and the relay's Origin but no token: 400 with the reason, and no device added.
        using (var refused = await browser.SendAsync(AddDevice(b, "gw9")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("antiforgery token", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.DoesNotContain("gw9", await DeviceIdsAsync(browser, b));
        Assert.DoesNotContain(JsonNode.Parse(await browser.GetStringAsync(new Uri(b.HttpUri, "/api/audit")))!.AsArray(),
            e => e!["action"]!.GetValue<string>() == "device.add");

        // The token relay A's page carried: relay B accepts it.
        using (var added = await browser.SendAsync(AddDevice(b, "gw9").With(tokenFromA)))
            Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        Assert.Contains("gw9", await DeviceIdsAsync(browser, a));

        // Logging out on B needs the token too; with A's it ends the session on both relays.
        using (var forged = await browser.PostAsync(new Uri(b.HttpUri, "/logout"), new FormUrlEncodedContent([])))
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync(new Uri(a.HttpUri, "/api/devices"))).StatusCode);
        using (var logout = await browser.PostAsync(new Uri(b.HttpUri, "/logout"), new FormUrlEncodedContent([new(RelaySignIn.TokenField, tokenFromA)])))
            Assert.Equal("/login", logout.Headers.Location?.OriginalString);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync(new Uri(a.HttpUri, "/api/devices"))).StatusCode);
    }

    [Fact]
    public async Task A_single_relay_keeps_its_key_ring_in_dataDir_across_a_restart()
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-keyring-").FullName;
        Guid[] before;
        await using (var relay = await RelayApp.StartAsync(Config(dir, null)))
            before = [.. relay.Services.GetRequiredService<IKeyManager>().GetAllKeys().Select(k => k.KeyId)];
        Assert.Single(before);
        Assert.Single(Directory.GetFiles(Path.Combine(dir, RelaySignIn.KeyRingDirectory), "key-*.xml"));
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(dir, RelaySignIn.KeyRingDirectory)));
        await using (var again = await RelayApp.StartAsync(Config(dir, null)))
            Assert.Equal(before, again.Services.GetRequiredService<IKeyManager>().GetAllKeys().Select(k => k.KeyId));
    }
}
