using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Npgsql;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 19 (docs/scale-out.md): two relay processes sharing one real PostgreSQL, behind a real HAProxy running
/// docs/haproxy.cfg (addresses swapped for loopback ports). The edge dials HAProxy; whichever relay holds its
/// uplink, RTSP through HAProxy plays (the other relay answers DESCRIBE with a 302 to the owner); a browser
/// login made on one relay is honoured by the other; the owner is killed and the device plays again through
/// HAProxy on the survivor within 30 s.
/// </summary>
[Collection(EndToEnd.Collection)]
public partial class ScaleOutTests(ITestOutputHelper output)
{
    [GeneratedRegex(@"(?m)^pinhole_rtsp_redirects_total(?:\{\})? (\d+)")]
    private static partial Regex RedirectsLine();

    private void Log(string line)
    {
        try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}"); }
        catch (InvalidOperationException) { }
    }

    private sealed class Relay(string name, string config, int httpPort, int rtspPort)
    {
        public string Name => name;
        public string Config => config;
        public int HttpPort => httpPort;
        public int RtspPort => rtspPort;
        public string PublicUrl => $"http://127.0.0.1:{httpPort}";
        public PeerProcess? Process { get; set; }
    }

    private static Relay NewRelay(string dir, string name, string database)
    {
        int http = FreePort.Get(), rtsp = FreePort.Get();
        var config = EndToEnd.WriteRelayConfig(dir, "127.0.0.1", http, rtsp, new Dictionary<string, object>
        {
            ["database"] = database,
            ["publicUrl"] = $"http://127.0.0.1:{http}",
            ["publicRtsp"] = $"127.0.0.1:{rtsp}",
        });
        return new Relay(name, config, http, rtsp);
    }

    /// <summary>docs/haproxy.cfg with its listen and server addresses pointed at this test's ports; each line it rewrites must be there.</summary>
    private static string HaProxyConfig(int web, int rtsp, Relay a, Relay b)
    {
        var text = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "haproxy.cfg"));
        string Swap(string text, string from, string to)
        {
            Assert.True(text.Contains(from, StringComparison.Ordinal), $"docs/haproxy.cfg no longer has \"{from}\"");
            return text.Replace(from, to, StringComparison.Ordinal);
        }
        text = Swap(text, "server relay1 10.0.0.11:8554 check port 8080", $"server relay1 127.0.0.1:{a.RtspPort} check port {a.HttpPort}");
        text = Swap(text, "server relay2 10.0.0.12:8554 check port 8080", $"server relay2 127.0.0.1:{b.RtspPort} check port {b.HttpPort}");
        text = Swap(text, "server relay1 10.0.0.11:8080 check", $"server relay1 127.0.0.1:{a.HttpPort} check");
        text = Swap(text, "server relay2 10.0.0.12:8080 check", $"server relay2 127.0.0.1:{b.HttpPort} check");
        text = Swap(text, "bind *:8554", $"bind 127.0.0.1:{rtsp}");
        text = Swap(text, "bind *:80\n", $"bind 127.0.0.1:{web}\n");
        return text;
    }

    private static async Task<string?> OwnerUrlAsync(string connectionString)
    {
        await using var db = new NpgsqlConnection(connectionString);
        await db.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT public_url FROM device_owners WHERE device = @d AND lease_until > now()", db);
        cmd.Parameters.AddWithValue("d", EndToEnd.Device);
        return await cmd.ExecuteScalarAsync() as string;
    }

    private static async Task<long> RedirectsAsync(HttpClient http, Relay relay)
    {
        var m = RedirectsLine().Match(await http.GetStringAsync($"{relay.PublicUrl}/metrics"));
        Assert.True(m.Success, $"{relay.Name} /metrics has no pinhole_rtsp_redirects_total");
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static async Task<string> CliAsync(Relay relay, params string[] args)
    {
        var result = await Command.RunAsync("dotnet", [EndToEnd.RelayDll, .. args, "--config", relay.Config], TimeSpan.FromSeconds(60));
        Assert.True(result.Succeeded, $"pinhole-relay {string.Join(' ', args)} on {relay.Name}: {result}");
        return result.StandardOutput;
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg | Needs.HaProxy | Needs.Postgres | Needs.Chromium)]
    public async Task Two_relays_behind_HAProxy_share_PostgreSQL_redirect_viewers_to_the_owner_and_take_over_when_it_dies()
    {
        await using var postgres = await PostgresServer.StartAsync();
        await postgres.CreateDatabaseAsync("fleet");
        var database = postgres.DatabaseUrl("fleet");
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 640, Height = 360, Gop = 25 });
        var dir = EndToEnd.NewWorkDir("scaleout");
        var a = NewRelay(dir, "relay1", database);
        var b = NewRelay(dir, "relay2", database);
        HaProxy? proxy = null;
        PeerProcess? edge = null;
        string Logs() => EndToEnd.Describe(edge, a.Process, b.Process) + "\n--- haproxy ---\n" + proxy?.Log;
        try
        {
            // Both relays start at the same moment against the empty database: both migrate safely and come up.
            var started = await Task.WhenAll(
                PeerProcess.StartAsync(EndToEnd.RelayStartInfo(a.Config, output, a.Name)),
                PeerProcess.StartAsync(EndToEnd.RelayStartInfo(b.Config, output, b.Name)));
            (a.Process, b.Process) = (started[0], started[1]);
            using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(10) };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"{a.PublicUrl}/healthz")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"{b.PublicUrl}/healthz")).StatusCode);

            int web = FreePort.Get(), rtsp = FreePort.Get();
            proxy = await HaProxy.StartWithConfigAsync(HaProxyConfig(web, rtsp, a, b), web, l => Log("haproxy " + l));
            var edgePort = FreePort.Get();
            var edgeConfig = EndToEnd.WriteEdgeConfig(dir, [$"ws://127.0.0.1:{web}/uplink"], camera.UrlWithCredentials.ToString(), edgePort);
            edge = await PeerProcess.StartAsync(EndToEnd.EdgeStartInfo(edgeConfig, edgePort, output));

            var viaProxy = EndToEnd.RtspUrl("127.0.0.1", rtsp);
            var first = await EndToEnd.ProbeUntilPlayingAsync(viaProxy, TimeSpan.FromSeconds(45), frames: 10);
            Assert.True(first.Succeeded, first + "\n" + Logs());
            var ownerUrl = await OwnerUrlAsync(postgres.ConnectionString("fleet"));
            Assert.NotNull(ownerUrl);
            var (owner, other) = ownerUrl == a.PublicUrl ? (a, b) : (b, a);
            Assert.Equal(owner.PublicUrl, ownerUrl);
            Log($"the uplink landed on {owner.Name}");

            // Ten plays in a row through HAProxy's RTSP port; round robin sends about half of them to the other relay,
            // which redirects them to the owner.
            var redirectsBefore = await RedirectsAsync(http, other);
            for (var i = 0; i < 10; i++)
            {
                var probe = await Ffprobe.ProbeAsync(viaProxy, new ProbeOptions { VideoFrames = 10, Timeout = TimeSpan.FromSeconds(20) });
                Assert.True(probe.Succeeded && probe.Video is { FramesDecoded: >= 10 }, $"play {i + 1} of 10 through HAProxy:\n{probe}\n{Logs()}");
                Assert.Empty(probe.DecoderErrors);
            }
            var redirected = await RedirectsAsync(http, other) - redirectsBefore;
            Log($"10 plays through HAProxy: {redirected} landed on {other.Name} and were redirected to {owner.Name}");
            Assert.InRange(redirected, 1, 10);
            Assert.Equal(0, await RedirectsAsync(http, owner));

            // A browser login made on one relay is a session on the other; the player page on the non-owner sends
            // the browser to the owner, which serves it with the same cookie.
            var login = new HttpRequestMessage(HttpMethod.Post, $"{other.PublicUrl}/login")
            {
                Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["user"] = EndToEnd.ViewerUser, ["password"] = EndToEnd.ViewerPassword }),
            };
            var loggedIn = await http.SendAsync(login);
            var cookie = loggedIn.Headers.GetValues("Set-Cookie").Select(c => c.Split(';')[0]).Single(c => c.StartsWith("pinhole_session=", StringComparison.Ordinal));
            var play = $"/play/{EndToEnd.Device}/{EndToEnd.CameraName}";
            using (var anonymous = await http.GetAsync($"{owner.PublicUrl}{play}"))
                Assert.NotEqual(HttpStatusCode.OK, anonymous.StatusCode); // the check below means something
            using (var moved = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"{other.PublicUrl}{play}") { Headers = { { "Cookie", cookie } } }))
            {
                Assert.Equal(HttpStatusCode.Redirect, moved.StatusCode);
                Assert.Equal($"{owner.PublicUrl}{play}", moved.Headers.Location!.ToString());
            }
            using (var page = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, $"{owner.PublicUrl}{play}") { Headers = { { "Cookie", cookie } } }))
                Assert.Equal(HttpStatusCode.OK, page.StatusCode);

            // A real browser logs in on the relay without the uplink, is sent to the owner, and plays there.
            using (var browser = Chromium.Start())
            {
                await WebRtcTests.LogInAsync(browser, new Uri($"{other.PublicUrl}/login?next={Uri.EscapeDataString(play)}"));
                await browser.WaitForAsync("window.pinhole && window.pinhole.state === 'live'", TimeSpan.FromSeconds(30));
                Assert.Equal(owner.HttpPort.ToString(CultureInfo.InvariantCulture), browser.Execute<string>("return window.location.port;"));
                var framesAtLive = browser.Execute<long>("return document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames;");
                await browser.WaitForAsync($"document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames > {framesAtLive + 25}", TimeSpan.FromSeconds(15));
                Log($"browser logged in on {other.Name}, playing from {owner.Name}");
            }

            // The registry is shared: a device added with the CLI against one relay's config is listed by the other's.
            await CliAsync(owner, "devices", "add", "cam-added");
            Assert.Contains("cam-added", await CliAsync(other, "devices", "list"), StringComparison.Ordinal);

            // The owner dies (no goodbye, its lease just stops being renewed): the edge reconnects through HAProxy to
            // the survivor, which claims the device, and RTSP through HAProxy plays again.
            var killedAt = DateTime.UtcNow;
            owner.Process!.Kill();
            await owner.Process.WaitForExitAsync(TimeSpan.FromSeconds(10));
            var again = await EndToEnd.ProbeUntilPlayingAsync(viaProxy, TimeSpan.FromSeconds(30), frames: 10);
            var took = DateTime.UtcNow - killedAt;
            Log($"after killing {owner.Name}: playing through HAProxy again after {took.TotalSeconds:0.0} s");
            Assert.True(again.Succeeded && again.Video is { FramesDecoded: >= 10 }, again + "\n" + Logs());
            Assert.True(took < TimeSpan.FromSeconds(30), $"took {took.TotalSeconds:0.0} s");
            Assert.Equal(other.PublicUrl, await OwnerUrlAsync(postgres.ConnectionString("fleet")));
            Assert.Contains("cam-added", await CliAsync(other, "devices", "list"), StringComparison.Ordinal);
        }
        finally
        {
            if (edge is not null) await edge.DisposeAsync();
            if (proxy is not null) await proxy.DisposeAsync();
            if (a.Process is not null) await a.Process.DisposeAsync();
            if (b.Process is not null) await b.Process.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
