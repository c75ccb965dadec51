using Pinhole.Streaming.Rtsp;
using System.Net;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;
using Pinhole.Relay.Rtsp;
using Pinhole.Relay.Tests.Rtsp;
using Pinhole.Relay.Tests.Telemetry;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>
/// Two relays in this process on one real PostgreSQL (docs/scale-out.md): the one holding a device's uplink is
/// its owner; the other sends RTSP DESCRIBE and the HTTP viewer endpoints there, and stops once the uplink ends.
/// </summary>
public sealed class OwnerRedirectTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static RelayConfig Config(string dataDir, DatabaseUrl database) => new()
    {
        Http = "http://127.0.0.1:0",
        Rtsp = "127.0.0.1:0",
        DataDir = dataDir,
        Database = database,
        Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
        Viewers = [new ViewerConfig { User = "alice", Password = "secret" }],
    };

    private static int RtspPort(RelayApp relay) => relay.Services.GetRequiredService<RtspServer>().LocalEndPoint!.Port;

    [RequiresFact(Needs.Postgres)]
    public async Task The_relay_without_the_uplink_redirects_viewers_to_the_one_with_it_until_the_uplink_ends()
    {
        var server = postgres.Server!;
        await server.CreateDatabaseAsync("redirects");
        Assert.True(DatabaseUrl.TryParse(server.DatabaseUrl("redirects"), out var url, out var error), error);
        var dirA = Directory.CreateTempSubdirectory("pinhole-owner-a-").FullName;
        var dirB = Directory.CreateTempSubdirectory("pinhole-owner-b-").FullName;
        // Started at the same moment against the empty database: both migrate it safely and serve.
        var relays = await Task.WhenAll(RelayApp.StartAsync(Config(dirA, url)), RelayApp.StartAsync(Config(dirB, url)));
        var (a, b) = (relays[0], relays[1]);
        try
        {
            var ownerA = a.Services.GetRequiredService<DeviceOwnershipService>();
            Assert.True(ownerA.Enabled);
            Assert.Equal(a.HttpUri.GetLeftPart(UriPartial.Authority), ownerA.Me.PublicUrl);
            Assert.Equal($"127.0.0.1:{RtspPort(a)}", ownerA.Me.PublicRtsp);
            var ownerB = b.Services.GetRequiredService<DeviceOwnershipService>();

            using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(10) };
            await using (var device = await FakeDevice.ConnectAsync(a.UplinkUri, "gw1", "a-long-random-secret", "test-device/1"))
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
                while (ownerB.OwnerElsewhere("gw1") is null)
                {
                    Assert.True(DateTime.UtcNow < deadline, "relay B never saw relay A as gw1's owner");
                    await Task.Delay(50);
                }
                Assert.Null(ownerA.OwnerElsewhere("gw1")); // the owner never redirects to itself

                await using (var rtsp = await RawRtspClient.ConnectAsync(RtspPort(b)))
                {
                    var moved = await rtsp.RequestAsync("DESCRIBE", $"rtsp://127.0.0.1:{RtspPort(b)}/gw1/cam");
                    Assert.Equal(302, moved.StatusCode);
                    Assert.Equal($"rtsp://127.0.0.1:{RtspPort(a)}/gw1/cam", moved.Headers["Location"]);
                    // Another device, unknown to both: no redirect, the usual authentication first.
                    Assert.Equal(401, (await rtsp.RequestAsync("DESCRIBE", $"rtsp://127.0.0.1:{RtspPort(b)}/gw9/cam")).StatusCode);
                }
                await using (var rtsp = await RawRtspClient.ConnectAsync(RtspPort(a)))
                    Assert.Equal(401, (await rtsp.RequestAsync("DESCRIBE", $"rtsp://127.0.0.1:{RtspPort(a)}/gw1/cam")).StatusCode);

                using (var page = await http.GetAsync(new Uri(b.HttpUri, "/play/gw1/cam?x=1")))
                {
                    Assert.Equal(HttpStatusCode.Redirect, page.StatusCode);
                    Assert.Equal(new Uri(a.HttpUri, "/play/gw1/cam?x=1"), page.Headers.Location);
                }
                using (var whep = await http.PostAsync(new Uri(b.HttpUri, "/whep/gw1/cam"), new StringContent("v=0")))
                {
                    Assert.Equal(HttpStatusCode.TemporaryRedirect, whep.StatusCode);
                    Assert.Equal(new Uri(a.HttpUri, "/whep/gw1/cam"), whep.Headers.Location);
                }
                using (var api = await http.GetAsync(new Uri(b.HttpUri, "/api/devices/gw1")))
                    Assert.Equal(new Uri(a.HttpUri, "/api/devices/gw1"), api.Headers.Location);

                // Logging in on B: the session is in the database, so A serves the player with B's cookie. The login
                // answers with a page that navigates on (a 302 out of B's origin after a form POST is refused by
                // browsers under form-action 'self').
                using var login = await http.PostAsync(new Uri(b.HttpUri, "/login?next=%2Fplay%2Fgw1%2Fcam"),
                    new FormUrlEncodedContent(new Dictionary<string, string> { ["user"] = "alice", ["password"] = "secret" }));
                Assert.Equal(HttpStatusCode.OK, login.StatusCode);
                Assert.Contains("http-equiv=\"refresh\" content=\"0;url=/play/gw1/cam\"", await login.Content.ReadAsStringAsync(), StringComparison.Ordinal);
                var cookie = login.Headers.GetValues("Set-Cookie").Select(c => c.Split(';')[0]).Single(c => c.StartsWith("pinhole_session=", StringComparison.Ordinal));
                // (This fake device has no camera, so the device list stands for the pages behind the login.)
                using (var anonymous = await http.GetAsync(a.HttpUri))
                    Assert.StartsWith("/login", anonymous.Headers.Location?.ToString() ?? $"no redirect: {anonymous.StatusCode}", StringComparison.Ordinal);
                using (var list = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, a.HttpUri) { Headers = { { "Cookie", cookie } } }))
                    Assert.Equal(HttpStatusCode.OK, list.StatusCode);
            }

            // The uplink ended: relay A released the device, relay B answers for itself again.
            var released = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (ownerB.OwnerElsewhere("gw1") is not null)
            {
                Assert.True(DateTime.UtcNow < released, "relay A never released gw1");
                await Task.Delay(50);
            }
            using (var page = await http.GetAsync(new Uri(b.HttpUri, "/play/gw1/cam")))
                Assert.False(page.Headers.Location?.ToString().StartsWith(a.HttpUri.GetLeftPart(UriPartial.Authority), StringComparison.Ordinal) ?? false,
                    $"still sent to relay A: {page.StatusCode} {page.Headers.Location}");
            await using (var rtsp = await RawRtspClient.ConnectAsync(RtspPort(b)))
                Assert.Equal(401, (await rtsp.RequestAsync("DESCRIBE", $"rtsp://127.0.0.1:{RtspPort(b)}/gw1/cam")).StatusCode);
        }
        finally
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
            Directory.Delete(dirA, recursive: true);
            Directory.Delete(dirB, recursive: true);
        }
    }
}
