using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 11, fleet management, with the real programs: <c>pinhole-relay</c> and <c>pinhole-edge</c> as
/// child processes, the configuration going over the uplink's data channel, the GStreamer camera
/// watched with ffprobe through the relay's RTSP URL.
/// </summary>
[Collection(EndToEnd.Collection)]
public sealed class FleetTests(ITestOutputHelper output)
{
    private static RtspCameraOptions CameraOptions => new() { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25 };

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task A_camera_put_by_an_admin_plays_within_10_s_and_is_still_there_after_kill_9()
    {
        await using var camera = await RtspCamera.StartAsync(CameraOptions);
        await using var fleet = await FleetStack.StartAsync(output);
        await fleet.StartEdgeAsync();
        await fleet.WaitForDeviceAsync(d => d["online"]!.GetValue<bool>(), "online", TimeSpan.FromSeconds(30));

        var clock = Stopwatch.StartNew();
        var (status, body) = await fleet.PutConfigAsync(CameraDocument(camera));
        Assert.True(status == HttpStatusCode.OK, body);
        var revision = JsonNode.Parse(body)!["revision"]!.GetValue<long>();
        var probe = await EndToEnd.ProbeUntilPlayingAsync(fleet.RtspUrl("door"), TimeSpan.FromSeconds(10) - clock.Elapsed, frames: 10);
        output.WriteLine($"playable {clock.Elapsed.TotalSeconds:0.0} s after the PUT");
        Assert.True(probe.Succeeded && probe.Video!.FramesDecoded >= 10, $"not playable within 10 s of the PUT\n{probe}\n{fleet.Logs}");
        var device = await fleet.WaitForDeviceAsync(d => d["reportedRevision"]?.GetValue<long>() == revision, "the new revision reported",
            TimeSpan.FromSeconds(10) - clock.Elapsed);
        Assert.Equal("applied", device["reportedOutcome"]!.GetValue<string>());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"applied and playable only after {clock.Elapsed}");

        // kill -9 and start again: the camera comes from the device's own saved config (the relay's resync says the same).
        await fleet.KillEdgeAsync();
        var saved = JsonNode.Parse(File.ReadAllText(fleet.EdgeConfigPath))!;
        Assert.Equal("door", saved["cameras"]![0]!["name"]!.GetValue<string>());
        await fleet.StartEdgeAsync();
        probe = await EndToEnd.ProbeUntilPlayingAsync(fleet.RtspUrl("door"), TimeSpan.FromSeconds(60));
        Assert.True(probe.Succeeded && probe.Video!.FramesDecoded >= 25, $"not playable after the edge was killed and restarted\n{probe}\n{fleet.Logs}");
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(fleet.Dir, "edge-data", "fleet-state.json")))!;
        Assert.Equal(revision, state["revision"]!.GetValue<long>());
        Assert.Equal("applied", state["outcome"]!.GetValue<string>());
        // The device page says so.
        Assert.Contains("\"managed\":{\"revision\":" + revision, await fleet.EdgeStatusAsync(), StringComparison.Ordinal);
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task Invalid_config_gets_400_and_one_the_device_rejects_is_reported_while_the_old_one_keeps_running()
    {
        await using var camera = await RtspCamera.StartAsync(CameraOptions);
        await using var fleet = await FleetStack.StartAsync(output);
        await fleet.StartEdgeAsync();

        var (badStatus, badBody) = await fleet.PutConfigAsync("""{ "cameras": [ { "name": "door", "source": "http://not-a-camera/x" } ] }""");
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        Assert.Equal("cameras[0].source: unsupported scheme \"http\" (use rtsp:// or exec:)\n", badBody);

        var (okStatus, okBody) = await fleet.PutConfigAsync(CameraDocument(camera));
        Assert.True(okStatus == HttpStatusCode.OK, okBody);
        var good = JsonNode.Parse(okBody)!["revision"]!.GetValue<long>();
        await fleet.WaitForDeviceAsync(d => d["reportedRevision"]?.GetValue<long>() == good, "the good revision applied", TimeSpan.FromSeconds(30));
        var probe = await EndToEnd.ProbeUntilPlayingAsync(fleet.RtspUrl("door"), TimeSpan.FromSeconds(45));
        Assert.True(probe.Succeeded, $"the good revision does not play\n{probe}\n{fleet.Logs}");

        // Valid for check-config, refused by the device: it does not let the relay make it run commands.
        var (status, body) = await fleet.PutConfigAsync("""{ "cameras": [ { "name": "door", "source": "exec:/bin/sh -c 'cat /dev/urandom'" } ] }""");
        Assert.True(status == HttpStatusCode.OK, body);
        var rejected = JsonNode.Parse(body)!["revision"]!.GetValue<long>();
        var device = await fleet.WaitForDeviceAsync(d => d["reportedRevision"]?.GetValue<long>() == rejected, "the rejection reported", TimeSpan.FromSeconds(30));
        Assert.Equal("rejected", device["reportedOutcome"]!.GetValue<string>());
        Assert.Contains("cameras[0].source: this device does not accept exec: sources", device["lastError"]!.GetValue<string>(), StringComparison.Ordinal);

        // The old configuration keeps running: the same camera still plays, and edge.json still has its RTSP source.
        probe = await EndToEnd.ProbeUntilPlayingAsync(fleet.RtspUrl("door"), TimeSpan.FromSeconds(30));
        Assert.True(probe.Succeeded, $"the running camera stopped after a rejected revision\n{probe}\n{fleet.Logs}");
        Assert.StartsWith("rtsp://", JsonNode.Parse(File.ReadAllText(fleet.EdgeConfigPath))!["cameras"]![0]!["source"]!.GetValue<string>(), StringComparison.Ordinal);
        var history = JsonNode.Parse(await fleet.GetAsync($"/api/devices/{EndToEnd.Device}/config/history"))!.AsArray();
        Assert.Equal(["rejected", "applied"], history.Select(h => h!["outcome"]!.GetValue<string>()));
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task A_config_set_while_the_device_is_offline_is_applied_when_it_connects()
    {
        await using var camera = await RtspCamera.StartAsync(CameraOptions);
        await using var fleet = await FleetStack.StartAsync(output);
        var device = JsonNode.Parse(await fleet.GetAsync($"/api/devices/{EndToEnd.Device}"))!;
        Assert.False(device["online"]!.GetValue<bool>());

        // Through the CLI this time, with the relay running: the stored revision waits for the device.
        var file = Path.Combine(fleet.Dir, "desired.json");
        File.WriteAllText(file, CameraDocument(camera));
        var (code, stdout, stderr) = await fleet.CliAsync("config", "set", EndToEnd.Device, file);
        Assert.True(code == 0, stderr);
        Assert.Equal($"{EndToEnd.Device}: revision 1", stdout.Trim());

        await fleet.StartEdgeAsync();
        device = await fleet.WaitForDeviceAsync(d => d["reportedRevision"]?.GetValue<long>() == 1, "revision 1 applied after connecting", TimeSpan.FromSeconds(30));
        Assert.Equal("applied", device["reportedOutcome"]!.GetValue<string>());
        var probe = await EndToEnd.ProbeUntilPlayingAsync(fleet.RtspUrl("door"), TimeSpan.FromSeconds(45));
        Assert.True(probe.Succeeded, $"not playable after the offline change\n{probe}\n{fleet.Logs}");

        (code, stdout, stderr) = await fleet.CliAsync("config", "get", EndToEnd.Device, "-");
        Assert.True(code == 0, stderr);
        Assert.Equal("door", JsonNode.Parse(stdout)!["cameras"]![0]!["name"]!.GetValue<string>());
        Assert.Contains("revision 1, applied", stderr, StringComparison.Ordinal);
        var audit = JsonNode.Parse(await fleet.GetAsync("/api/audit"))!.AsArray();
        var set = Assert.Single(audit, a => a!["action"]!.GetValue<string>() == "config.set")!;
        Assert.StartsWith("cli:", set["actor"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("local", set["from"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_viewer_gets_403_nobody_401_and_a_revoked_device_is_dropped_and_stays_out()
    {
        await using var fleet = await FleetStack.StartAsync(output);
        await fleet.StartEdgeAsync();
        await fleet.WaitForDeviceAsync(d => d["online"]!.GetValue<bool>(), "online", TimeSpan.FromSeconds(30));

        using var anonymous = new HttpClient { BaseAddress = fleet.HttpUri };
        using var viewer = await fleet.LoginAsync(FleetStack.ViewerUser, FleetStack.ViewerPassword);
        foreach (var (method, path) in new[] { ("GET", "/api/devices"), ("GET", $"/api/devices/{EndToEnd.Device}"), ("PUT", $"/api/devices/{EndToEnd.Device}/config"),
                     ("GET", $"/api/devices/{EndToEnd.Device}/config"), ("POST", $"/api/devices/{EndToEnd.Device}/revoke"), ("GET", "/api/audit") })
        {
            HttpRequestMessage Request()
            {
                var r = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : new StringContent("{}", Encoding.UTF8, "application/json") };
                r.Headers.Add("Origin", fleet.HttpUri.GetLeftPart(UriPartial.Authority));
                return r;
            }
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(Request())).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await viewer.SendAsync(Request())).StatusCode);
        }
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.GetAsync(new Uri("/fleet", UriKind.Relative))).StatusCode);

        // Revoked from the CLI while the relay runs: the live uplink is closed at once and the device cannot come back.
        var clock = Stopwatch.StartNew();
        var (code, _, stderr) = await fleet.CliAsync("devices", "revoke", EndToEnd.Device);
        Assert.True(code == 0, stderr);
        await fleet.WaitForDeviceAsync(d => !d["online"]!.GetValue<bool>(), "offline after the revocation", TimeSpan.FromSeconds(5));
        output.WriteLine($"uplink closed {clock.Elapsed.TotalSeconds:0.0} s after the revocation");
        await fleet.Relay!.WaitForLineAsync(new System.Text.RegularExpressions.Regex("Uplink refused before upgrade .*unauthorized"), TimeSpan.FromSeconds(30));
        await Task.Delay(TimeSpan.FromSeconds(5));
        var device = JsonNode.Parse(await fleet.GetAsync($"/api/devices/{EndToEnd.Device}"))!;
        Assert.False(device["online"]!.GetValue<bool>(), fleet.Logs);
        Assert.True(device["revoked"]!.GetValue<bool>());
        Assert.False(fleet.Edge!.HasExited, fleet.Logs);
        var audit = JsonNode.Parse(await fleet.GetAsync("/api/audit"))!.AsArray();
        Assert.Contains(audit, a => a!["action"]!.GetValue<string>() == "device.revoke" && a["target"]!.GetValue<string>() == EndToEnd.Device);
    }

    [Fact]
    public async Task Relays_that_reach_nothing_are_reverted_by_the_device_and_reported_when_it_is_back()
    {
        await using var fleet = await FleetStack.StartAsync(output);
        await fleet.StartEdgeAsync(connectivityGuard: "15s");
        await fleet.WaitForDeviceAsync(d => d["online"]!.GetValue<bool>(), "online", TimeSpan.FromSeconds(30));

        var nowhere = $"ws://127.0.0.1:{FreePort.Get()}/uplink";
        var clock = Stopwatch.StartNew();
        var (status, body) = await fleet.PutConfigAsync($$"""{ "relays": [ "{{nowhere}}" ], "cameras": [] }""");
        Assert.True(status == HttpStatusCode.OK, body);
        var revision = JsonNode.Parse(body)!["revision"]!.GetValue<long>();
        await fleet.WaitForDeviceAsync(d => !d["online"]!.GetValue<bool>(), "gone to the unreachable relay", TimeSpan.FromSeconds(15));

        var device = await fleet.WaitForDeviceAsync(d => d["reportedRevision"]?.GetValue<long>() == revision && d["online"]!.GetValue<bool>(),
            "back with the revision reported", TimeSpan.FromMinutes(2));
        output.WriteLine($"reverted and back {clock.Elapsed.TotalSeconds:0.0} s after the PUT");
        Assert.Equal("reverted", device["reportedOutcome"]!.GetValue<string>());
        Assert.Contains("no relay could be reached", device["lastError"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2));
        var relays = JsonNode.Parse(File.ReadAllText(fleet.EdgeConfigPath))!["relays"]!.AsArray().Select(r => r!.GetValue<string>());
        Assert.Equal([fleet.UplinkUrl], relays);
    }

    private static string CameraDocument(RtspCamera camera) =>
        JsonSerializer.Serialize(new { cameras = new[] { new { name = "door", source = camera.UrlWithCredentials.ToString() } } });
}

/// <summary>A relay (admin, viewer, an API token made with the CLI) and an edge with no cameras, as child processes.</summary>
internal sealed class FleetStack : IAsyncDisposable
{
    public const string AdminUser = "admin";
    public const string AdminPassword = "admin-pass";
    public const string ViewerUser = "viewer";
    public const string ViewerPassword = "viewer-pass";
    private readonly ITestOutputHelper _output;
    private readonly HttpClient _api;

    private FleetStack(ITestOutputHelper output, string dir, string token, int httpPort, int rtspPort, int webPort)
    {
        _output = output;
        Dir = dir;
        Token = token;
        HttpPort = httpPort;
        RtspPort = rtspPort;
        WebPort = webPort;
        _api = new HttpClient { BaseAddress = HttpUri, Timeout = TimeSpan.FromSeconds(30) };
        _api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public string Dir { get; }
    public string Token { get; }
    public int HttpPort { get; }
    public int RtspPort { get; }
    public int WebPort { get; }
    public Uri HttpUri => new($"http://127.0.0.1:{HttpPort}");
    public string UplinkUrl => $"ws://127.0.0.1:{HttpPort}/uplink";
    public string RelayConfigPath => Path.Combine(Dir, "relay.json");
    public string EdgeConfigPath => Path.Combine(Dir, "edge.json");
    public PeerProcess? Relay { get; private set; }
    public PeerProcess? Edge { get; private set; }
    public string Logs => EndToEnd.Describe(Edge, Relay);

    public Uri RtspUrl(string camera) => new($"rtsp://{ViewerUser}:{ViewerPassword}@127.0.0.1:{RtspPort}/{EndToEnd.Device}/{camera}");

    public static async Task<FleetStack> StartAsync(ITestOutputHelper output)
    {
        var dir = EndToEnd.NewWorkDir("fleet");
        int httpPort = FreePort.Get(), rtspPort = FreePort.Get(), webPort = FreePort.Get();
        var relayConfig = Path.Combine(dir, "relay.json");
        File.WriteAllText(relayConfig, JsonSerializer.Serialize(new
        {
            http = $"http://127.0.0.1:{httpPort}",
            rtsp = $"127.0.0.1:{rtspPort}",
            dataDir = Path.Combine(dir, "relay-data"),
            devices = new[] { new { id = EndToEnd.Device, token = EndToEnd.Token } },
            viewers = new object[] { new { user = AdminUser, password = AdminPassword, role = "admin" }, new { user = ViewerUser, password = ViewerPassword } },
        }));
        var (code, token, err) = await RunCliAsync(relayConfig, "tokens", "add", "ci");
        Assert.True(code == 0, err);
        var stack = new FleetStack(output, dir, token.Trim(), httpPort, rtspPort, webPort);
        stack.Relay = await PeerProcess.StartAsync(EndToEnd.RelayStartInfo(stack.RelayConfigPath, output));
        return stack;
    }

    public async Task StartEdgeAsync(string connectivityGuard = "90s")
    {
        if (!File.Exists(EdgeConfigPath))
        {
            File.WriteAllText(EdgeConfigPath, JsonSerializer.Serialize(new
            {
                deviceId = EndToEnd.Device,
                token = EndToEnd.Token,
                relays = new[] { UplinkUrl },
                web = new { listen = $"http://127.0.0.1:{WebPort}", password = "edge-page-password" },
                dataDir = Path.Combine(Dir, "edge-data"),
                fleet = new { connectivityGuard },
            }));
        }
        Edge = await PeerProcess.StartAsync(EndToEnd.EdgeStartInfo(EdgeConfigPath, WebPort, _output));
    }

    public async Task KillEdgeAsync()
    {
        if (Edge is null) return;
        Edge.Kill(); // SIGKILL: no goodbye, no flush
        await Edge.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await Edge.DisposeAsync();
        Edge = null;
    }

    public Task<(int Code, string Out, string Err)> CliAsync(params string[] args) => RunCliAsync(RelayConfigPath, args);

    private static async Task<(int Code, string Out, string Err)> RunCliAsync(string relayConfig, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(EndToEnd.RelayDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--config");
        psi.ArgumentList.Add(relayConfig);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    public async Task<(HttpStatusCode Status, string Body)> PutConfigAsync(string json)
    {
        var response = await _api.PutAsync(new Uri($"/api/devices/{EndToEnd.Device}/config", UriKind.Relative), new StringContent(json, Encoding.UTF8, "application/json"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    public Task<string> GetAsync(string path) => _api.GetStringAsync(new Uri(path, UriKind.Relative));

    public async Task<JsonNode> WaitForDeviceAsync(Func<JsonNode, bool> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonNode device;
        while (true)
        {
            device = JsonNode.Parse(await GetAsync($"/api/devices/{EndToEnd.Device}"))!;
            if (condition(device)) return device;
            if (DateTime.UtcNow >= deadline) break;
            await Task.Delay(100);
        }
        Assert.Fail($"not {what} within {timeout.TotalSeconds:0.#} s: {device.ToJsonString()}\n{Logs}");
        return device;
    }

    public async Task<HttpClient> LoginAsync(string user, string password)
    {
        var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer() }) { BaseAddress = HttpUri };
        var login = await http.PostAsync(new Uri("/login", UriKind.Relative), new FormUrlEncodedContent([new("user", user), new("password", password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        return http;
    }

    /// <summary>The edge page's /api/status, after logging in to it.</summary>
    public async Task<string> EdgeStatusAsync()
    {
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer() }) { BaseAddress = new Uri($"http://127.0.0.1:{WebPort}") };
        var login = new HttpRequestMessage(HttpMethod.Post, "/login") { Content = new FormUrlEncodedContent([new("password", "edge-page-password")]) };
        login.Headers.Add("Origin", $"http://127.0.0.1:{WebPort}");
        var response = await http.SendAsync(login);
        Assert.True(response.StatusCode is HttpStatusCode.Redirect or HttpStatusCode.SeeOther or HttpStatusCode.OK, $"edge login: {response.StatusCode}");
        return await http.GetStringAsync(new Uri("/api/status", UriKind.Relative));
    }

    public async ValueTask DisposeAsync()
    {
        _api.Dispose();
        if (Edge is not null) await Edge.DisposeAsync();
        if (Relay is not null) await Relay.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
