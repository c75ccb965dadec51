using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>The fleet API on an in-process relay: who may call it, validation, revisions and the audit log.</summary>
public sealed class FleetApiTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-fleet-").FullName;
    private RelayApp _relay = null!;
    private string _token = "";

    public async Task InitializeAsync()
    {
        var config = new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = _dir,
            Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
            Viewers =
            [
                new ViewerConfig { User = "alice", Password = "alice-pass", Role = ViewerRoles.Admin },
                new ViewerConfig { User = "bob", Password = "bob-pass" },
            ],
        };
        _relay = await RelayApp.StartAsync(config);
        _token = ApiTokens.Create(_relay.Services.GetRequiredService<IFleetStore>(), "ci", DateTimeOffset.UtcNow);
    }

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private HttpClient Client(string? bearer = null)
    {
        var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() }) { BaseAddress = _relay.HttpUri };
        if (bearer is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return http;
    }

    private async Task<HttpClient> LoggedInAsync(string user, string password)
    {
        var http = Client();
        var login = await http.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", user), new("password", password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return http;
    }

    private static StringContent Json(string text) => new(text, Encoding.UTF8, "application/json");

    public static TheoryData<string, string> FleetCalls => new()
    {
        { "GET", "/api/devices" },
        { "GET", "/api/devices/gw1" },
        { "GET", "/api/devices/gw1/config" },
        { "PUT", "/api/devices/gw1/config" },
        { "GET", "/api/devices/gw1/config/history" },
        { "POST", "/api/devices" },
        { "POST", "/api/devices/gw1/revoke" },
        { "POST", "/api/devices/gw1/rotate-token" },
        { "DELETE", "/api/devices/gw1" },
        { "GET", "/api/audit" },
    };

    [Theory]
    [MemberData(nameof(FleetCalls))]
    public async Task Nobody_gets_401_and_a_viewer_403_on_every_fleet_call(string method, string path)
    {
        using var anonymous = Client();
        using var wrongToken = Client("pht_not-a-token");
        using var viewer = await LoggedInAsync("bob", "bob-pass");
        HttpRequestMessage Request() => new(new HttpMethod(method), path) { Content = method is "GET" or "DELETE" ? null : Json("{}") };

        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(Request())).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await wrongToken.SendAsync(Request())).StatusCode);
        var request = Request();
        request.Headers.Add("Origin", _relay.HttpUri.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.SendAsync(request)).StatusCode);
        // Nothing changed: the device is still there and not revoked, and nothing was audited.
        using var admin = Client(_token);
        var device = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/devices/gw1", UriKind.Relative)))!;
        Assert.False(device["revoked"]!.GetValue<bool>());
        Assert.Equal("[]", await admin.GetStringAsync(new Uri("/api/audit", UriKind.Relative)));
    }

    [Fact]
    public async Task An_invalid_config_gets_400_with_one_line_per_problem_and_stores_nothing()
    {
        using var admin = Client(_token);
        var response = await admin.PutAsync(new Uri("/api/devices/gw1/config", UriKind.Relative), Json("""
            { "cameras": [ { "name": "door", "source": "http://cam/1" }, { "name": "bad name!", "source": "rtsp://cam/2" } ],
              "deviceId": "other", "mqtt": { "url": "wss://b/mqtt", "bogus": 1 } }
            """));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Contains(lines, l => l.StartsWith("deviceId: cannot be managed from the relay", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("cameras[0].source: unsupported scheme \"http\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("cameras[1].name: must be 1-64 characters", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("mqtt.bogus: unknown key", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync(new Uri("/api/devices/gw1/config", UriKind.Relative))).StatusCode);

        var notJson = await admin.PutAsync(new Uri("/api/devices/gw1/config", UriKind.Relative), Json("{ \"cameras\": [ "));
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
        Assert.StartsWith("invalid JSON", await notJson.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var notUtf8 = await admin.PutAsync(new Uri("/api/devices/gw1/config", UriKind.Relative), new ByteArrayContent([0x7b, 0xC3, 0x28, 0x7d]));
        Assert.Equal(HttpStatusCode.BadRequest, notUtf8.StatusCode);
        Assert.Equal("the document is not UTF-8 text\n", await notUtf8.Content.ReadAsStringAsync());
        var huge = await admin.PutAsync(new Uri("/api/devices/gw1/config", UriKind.Relative), Json(new string(' ', 600 * 1024)));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, huge.StatusCode);
    }

    [Fact]
    public async Task A_valid_config_becomes_the_next_revision_and_is_audited_with_who_and_from_where()
    {
        using var admin = Client(_token);
        var first = await admin.PutAsync(new Uri("/api/devices/gw1/config", UriKind.Relative), Json("""{ "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ] }"""));
        var second = await admin.PutAsync(new Uri("/api/devices/gw1/config", UriKind.Relative), Json("""{ "cameras": [], "sensors": [] }"""));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(1, JsonNode.Parse(await first.Content.ReadAsStringAsync())!["revision"]!.GetValue<long>());
        Assert.Equal(2, JsonNode.Parse(await second.Content.ReadAsStringAsync())!["revision"]!.GetValue<long>());
        var get = await admin.GetAsync(new Uri("/api/devices/gw1/config", UriKind.Relative));
        Assert.Equal("2", get.Headers.GetValues("Pinhole-Config-Revision").Single());
        Assert.Equal("""{"cameras":[],"sensors":[]}""", await get.Content.ReadAsStringAsync());

        var device = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/devices/gw1", UriKind.Relative)))!;
        Assert.Equal(2, device["desiredRevision"]!.GetValue<long>());
        Assert.False(device["online"]!.GetValue<bool>());
        Assert.Null(device["reportedRevision"]);

        var history = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/devices/gw1/config/history", UriKind.Relative)))!.AsArray();
        Assert.Equal([2L, 1L], history.Select(h => h!["revision"]!.GetValue<long>()));
        Assert.All(history, h => Assert.Equal("token:ci", h!["author"]!.GetValue<string>()));

        var audit = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/audit", UriKind.Relative)))!.AsArray();
        Assert.Equal(2, audit.Count);
        Assert.All(audit, a =>
        {
            Assert.Equal("token:ci", a!["actor"]!.GetValue<string>());
            Assert.Equal("127.0.0.1", a["from"]!.GetValue<string>());
            Assert.Equal("config.set", a["action"]!.GetValue<string>());
            Assert.Equal("gw1", a["target"]!.GetValue<string>());
        });
        Assert.StartsWith("revision 2", audit[0]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_admin_session_may_change_only_from_the_relays_own_origin_with_its_antiforgery_token()
    {
        using var admin = await LoggedInAsync("alice", "alice-pass");
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync(new Uri("/api/devices", UriKind.Relative))).StatusCode);

        var foreign = new HttpRequestMessage(HttpMethod.Put, "/api/devices/gw1/config") { Content = Json("""{ "cameras": [] }""") };
        foreign.Headers.Add("Origin", "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await admin.SendAsync(foreign)).StatusCode);
        var noOrigin = new HttpRequestMessage(HttpMethod.Put, "/api/devices/gw1/config") { Content = Json("""{ "cameras": [] }""") };
        Assert.Equal(HttpStatusCode.Forbidden, (await admin.SendAsync(noOrigin)).StatusCode);

        // The relay's own Origin but no antiforgery token (a page that is not the relay's, or a stale one): 400, nothing stored.
        var noToken = new HttpRequestMessage(HttpMethod.Put, "/api/devices/gw1/config") { Content = Json("""{ "cameras": [] }""") };
        noToken.Headers.Add("Origin", _relay.HttpUri.GetLeftPart(UriPartial.Authority));
        using (var refused = await admin.SendAsync(noToken))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("antiforgery token", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync(new Uri("/api/devices/gw1/config", UriKind.Relative))).StatusCode);
        var wrongToken = new HttpRequestMessage(HttpMethod.Put, "/api/devices/gw1/config") { Content = Json("""{ "cameras": [] }""") }.With("CfDJ8-not-a-token");
        wrongToken.Headers.Add("Origin", _relay.HttpUri.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.SendAsync(wrongToken)).StatusCode);

        var own = new HttpRequestMessage(HttpMethod.Put, "/api/devices/gw1/config") { Content = Json("""{ "cameras": [] }""") }
            .With(await RelayAntiforgery.TokenAsync(admin));
        own.Headers.Add("Origin", _relay.HttpUri.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.OK, (await admin.SendAsync(own)).StatusCode);
        var audit = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/audit", UriKind.Relative)))!.AsArray();
        Assert.Equal("user:alice", Assert.Single(audit)!["actor"]!.GetValue<string>());
    }

    [Fact]
    public async Task Devices_are_added_rotated_and_revoked_through_the_api()
    {
        using var admin = Client(_token);
        var added = await admin.PostAsync(new Uri("/api/devices", UriKind.Relative), Json("""{ "id": "gw2" }"""));
        Assert.Equal(HttpStatusCode.Created, added.StatusCode);
        var token = JsonNode.Parse(await added.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        var registry = _relay.Services.GetRequiredService<Pinhole.Relay.Devices.DeviceRegistry>();
        Assert.True(await registry.AuthenticateAsync("gw2", token, default));

        var rotated = await admin.PostAsync(new Uri("/api/devices/gw2/rotate-token", UriKind.Relative), Json("{}"));
        var newToken = JsonNode.Parse(await rotated.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        Assert.False(await registry.AuthenticateAsync("gw2", token, default));
        Assert.True(await registry.AuthenticateAsync("gw2", newToken, default));

        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsync(new Uri("/api/devices/gw1/revoke", UriKind.Relative), Json("{}"))).StatusCode);
        Assert.False(await registry.AuthenticateAsync("gw1", "a-long-random-secret", default));
        var gw1 = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/devices/gw1", UriKind.Relative)))!;
        Assert.True(gw1["revoked"]!.GetValue<bool>());

        // A relay.json device is removed from relay.json; removing its stored override would undo the revocation.
        Assert.Equal(HttpStatusCode.Conflict, (await admin.DeleteAsync(new Uri("/api/devices/gw1", UriKind.Relative))).StatusCode);
        Assert.False(await registry.AuthenticateAsync("gw1", "a-long-random-secret", default));
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync(new Uri("/api/devices/gw2", UriKind.Relative))).StatusCode);
        Assert.False(await registry.AuthenticateAsync("gw2", newToken, default));
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync(new Uri("/api/devices/nope", UriKind.Relative))).StatusCode);
        var actions = JsonNode.Parse(await admin.GetStringAsync(new Uri("/api/audit", UriKind.Relative)))!.AsArray().Select(a => a!["action"]!.GetValue<string>()).ToList();
        Assert.Equal(["device.remove", "device.revoke", "device.rotate-token", "device.add"], actions);
    }
}
