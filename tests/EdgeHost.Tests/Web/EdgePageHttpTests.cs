using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using System.Diagnostics.Metrics;
using Pinhole.EdgeHost.Tests.Support;
using Pinhole.EdgeHost.Web;
using Pinhole.Transport.Security;

namespace Pinhole.EdgeHost.Tests.Web;

public partial class EdgePageHttpTests
{
    [GeneratedRegex("<meta name=\"csrf-token\" content=\"([^\"]+)\">")]
    private static partial Regex CsrfMeta();

    private static async Task<string> LogInAsync(HttpClient client, string password = TempConfigDir.Password)
    {
        var login = await client.PostAsync("/login", new FormUrlEncodedContent([new("password", password)]));
        Assert.Equal(HttpStatusCode.Redirect, login.StatusCode);
        var setCookie = Assert.Single(login.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", setCookie, StringComparison.OrdinalIgnoreCase);
        var page = await client.GetStringAsync("/");
        return CsrfMeta().Match(page).Groups[1].Value;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Healthz_is_200_when_all_pipelines_are_healthy_and_503_with_the_unhealthy_ones_listed()
    {
        var broken = false;
        await using var host = await EdgeTestHost.StartAsync(services: s => s.AddSingleton<IPipelineFactory>(
            new BreakableFactory(() => broken)));
        using var client = host.CreateClient();

        await EdgeTestHost.WaitUntilAsync(() => host.Supervisor.Snapshot().All(p => p.Healthy), TimeSpan.FromSeconds(10), "healthy");
        var ok = await client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("ok", JsonNode.Parse(await ok.Content.ReadAsStringAsync())!["status"]!.GetValue<string>());

        broken = true;
        await EdgeTestHost.WaitUntilAsync(() => host.Supervisor.Snapshot().Any(p => !p.Healthy), TimeSpan.FromSeconds(10), "unhealthy");
        var bad = await client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, bad.StatusCode);
        var body = JsonNode.Parse(await bad.Content.ReadAsStringAsync())!;
        Assert.Equal("unhealthy", body["status"]!.GetValue<string>());
        var unhealthy = Assert.Single(body["unhealthy"]!.AsArray());
        Assert.Equal("breakable", unhealthy!["name"]!.GetValue<string>());
        Assert.Contains("threw InvalidOperationException: broken on purpose", unhealthy["reason"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private sealed class BreakableFactory(Func<bool> broken) : IPipelineFactory
    {
        public IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config) =>
            [new("breakable", "1", () => new ScriptedPipeline("breakable", TimeSpan.FromSeconds(5), new StartLog(), async (ctx, ct) =>
            {
                while (!broken()) { ctx.Heartbeat(); await Task.Delay(50, ct); }
                throw new InvalidOperationException("broken on purpose");
            }))];
    }

    [Fact]
    public async Task Metrics_show_pipeline_states_restarts_and_what_pipelines_register()
    {
        // Registered the way a camera feature would: a factory that takes the edge's Meter from DI.
        await using var host = await EdgeTestHost.StartAsync(services: s => s.AddPipelineFactory((sp, config) =>
        {
            var meter = sp.GetRequiredService<Meter>();
            return [new PipelineSpec("camera/counting", "1", () => new ScriptedPipeline("camera/counting", TimeSpan.FromSeconds(5), new StartLog(), async (ctx, ct) =>
            {
                var frames = meter.CreateCounter<long>("pinhole_frames_total", description: "Frames sent.");
                while (true) { frames.Add(1, new KeyValuePair<string, object?>("camera", "counting")); ctx.Heartbeat(); await Task.Delay(20, ct); }
            }))];
        }));
        using var client = host.CreateClient();
        await EdgeTestHost.WaitUntilAsync(() => host.Supervisor.Snapshot().All(p => p.Healthy), TimeSpan.FromSeconds(10), "healthy");
        var response = await client.GetAsync("/metrics");
        Assert.Equal("text/plain", response.Content.Headers.ContentType!.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("pinhole_pipeline_up{pipeline=\"camera/door\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("pinhole_pipeline_state{pipeline=\"uplink\",state=\"running\"} 1", text, StringComparison.Ordinal);
        Assert.Contains("pinhole_pipeline_state{pipeline=\"uplink\",state=\"restarting\"} 0", text, StringComparison.Ordinal);
        Assert.Contains("pinhole_pipeline_restarts_total{pipeline=\"mqtt\"} 0", text, StringComparison.Ordinal);
        Assert.Matches(@"pinhole_frames_total\{camera=""counting""\} [1-9]", text);
    }

    [Fact]
    public async Task The_api_needs_a_session_and_changes_need_the_csrf_token()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var anonymous = host.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/status")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/config")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/api/config", Json("{}"))).StatusCode);
        Assert.Contains("name=\"password\"", await anonymous.GetStringAsync("/"), StringComparison.Ordinal);

        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        Assert.False(string.IsNullOrEmpty(csrf));
        var status = JsonNode.Parse(await client.GetStringAsync("/api/status"))!;
        Assert.Equal("gw1", status["deviceId"]!.GetValue<string>());
        Assert.Equal(6, status["pipelines"]!.AsArray().Count);

        var config = JsonNode.Parse(await client.GetStringAsync("/api/config"))!;
        Assert.Null(config["mqtt"]!["password"]);
        Assert.True(config["mqtt"]!["passwordSet"]!.GetValue<bool>());
        Assert.Null(config["token"]);

        var noToken = await client.PostAsync("/api/config", Json("{}"));
        Assert.Equal(HttpStatusCode.Forbidden, noToken.StatusCode);

        using var wrongToken = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = Json("{}") };
        wrongToken.Headers.Add("X-CSRF-Token", "not-the-token");
        Assert.Equal(HttpStatusCode.Forbidden, (await client.SendAsync(wrongToken)).StatusCode);

        using var crossOrigin = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = Json("{}") };
        crossOrigin.Headers.Add("X-CSRF-Token", csrf);
        crossOrigin.Headers.Add("Origin", "http://evil.example");
        Assert.Equal(HttpStatusCode.Forbidden, (await client.SendAsync(crossOrigin)).StatusCode);
    }

    [Theory]
    [InlineData("{ not json", 400, "invalid JSON")]
    [InlineData("[1,2]", 400, "expected a JSON object")]
    [InlineData("{\"token\": \"stolen\"}", 400, "cannot be changed from the page")]
    [InlineData("{\"cameras\": [{\"name\": \"door\", \"source\": \"ftp://x/y\"}]}", 400, "unsupported scheme \\u0022ftp\\u0022")]
    [InlineData("{\"cameras\": [{\"name\": \"door\", \"source\": \"rtsp://x/y\", \"transport\": \"quic\"}]}", 400, "{\"path\":\"cameras[0].transport\",\"message\":\"must be \\u0022auto\\u0022, \\u0022tcp\\u0022 or \\u0022udp\\u0022")]
    public async Task Bad_requests_get_a_clear_error_and_change_nothing(string body, int status, string message)
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var before = await File.ReadAllTextAsync(host.ConfigPath);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = Json(body) };
        request.Headers.Add("X-CSRF-Token", csrf);
        var response = await client.SendAsync(request);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Contains(message, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(host.ConfigPath));
        Assert.False(File.Exists(host.ConfigPath + ".prev"));

        // And the process is still serving.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task Wrong_content_type_and_oversized_bodies_are_refused()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);

        using var text = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = new StringContent("{}", Encoding.UTF8, "text/plain") };
        text.Headers.Add("X-CSRF-Token", csrf);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await client.SendAsync(text)).StatusCode);

        using var huge = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = Json("{\"cameras\": \"" + new string('x', 200_000) + "\"}") };
        huge.Headers.Add("X-CSRF-Token", csrf);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await client.SendAsync(huge)).StatusCode);

        using var notAForm = new HttpRequestMessage(HttpMethod.Post, "/login") { Content = Json("{\"password\":\"x\"}") };
        Assert.Equal(HttpStatusCode.BadRequest, (await client.SendAsync(notAForm)).StatusCode);
    }

    [Fact]
    public async Task A_valid_save_is_atomic_keeps_the_previous_file_keeps_secrets_and_restarts_only_what_changed()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        string[] all = ["uplink", "camera/door", "camera/pi", "sensor/cpu_temp", "sensor/door_contact", "mqtt"];
        await EdgeTestHost.WaitUntilAsync(() => all.All(n => host.Starts.Count(n) == 1), TimeSpan.FromSeconds(10), "all started");
        var before = await File.ReadAllTextAsync(host.ConfigPath);

        var sections = JsonNode.Parse(await client.GetStringAsync("/api/config"))!.AsObject();
        sections["sensors"]![0]!["interval"] = "10s";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = Json(sections.ToJsonString()) };
        request.Headers.Add("X-CSRF-Token", csrf);
        var response = await client.SendAsync(request);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["sensor/cpu_temp"], body["restarted"]!.AsArray().Select(n => n!.GetValue<string>()));

        Assert.Equal(before, await File.ReadAllTextAsync(host.ConfigPath + ".prev"));
        var saved = EdgeConfigLoader.LoadFile(host.ConfigPath);
        Assert.True(saved.IsValid);
        Assert.Equal("10s", saved.Config!.Sensors[0].Interval);
        Assert.Equal("mqtt-secret", saved.Config.Mqtt!.Password);
        Assert.Equal("a-long-random-secret", saved.Config.Token);
        Assert.Equal(TempConfigDir.Password, saved.Config.Web.Password);
        Assert.Empty(Directory.GetFiles(host.Dir.Path, "*.tmp", SearchOption.AllDirectories));

        await EdgeTestHost.WaitUntilAsync(() => host.Starts.Count("sensor/cpu_temp") == 2, TimeSpan.FromSeconds(10), "sensor restart");
        Assert.All(all.Where(n => n != "sensor/cpu_temp"), n => Assert.Equal(1, host.Starts.Count(n)));
    }

    [Fact]
    public async Task A_camera_transport_saved_from_the_page_reaches_the_file_and_restarts_only_that_camera()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        await EdgeTestHost.WaitUntilAsync(() => host.Starts.Count("camera/door") == 1 && host.Starts.Count("camera/pi") == 1, TimeSpan.FromSeconds(10), "cameras started");

        var sections = JsonNode.Parse(await client.GetStringAsync("/api/config"))!.AsObject();
        Assert.Null(sections["cameras"]![0]!["transport"]); // auto: the key is left out
        sections["cameras"]![0]!["transport"] = "udp";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/config") { Content = Json(sections.ToJsonString()) };
        request.Headers.Add("X-CSRF-Token", csrf);
        var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["camera/door"], JsonNode.Parse(await response.Content.ReadAsStringAsync())!["restarted"]!.AsArray().Select(n => n!.GetValue<string>()));

        Assert.Equal("udp", EdgeConfigLoader.LoadFile(host.ConfigPath).Config!.Cameras[0].Transport);
        Assert.Equal("udp", JsonNode.Parse(await client.GetStringAsync("/api/config"))!["cameras"]![0]!["transport"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_config_a_feature_cannot_apply_is_rolled_back_and_the_running_set_stays()
    {
        await using var host = await EdgeTestHost.StartAsync(services: s => s.AddPipelineFactory((sp, config) =>
            config.Cameras.Any(c => c.Name == "explode") ? throw new InvalidOperationException("factory bug") : []));
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);
        var before = await File.ReadAllTextAsync(host.ConfigPath);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/config")
        { Content = Json("{\"cameras\": [{\"name\": \"explode\", \"source\": \"rtsp://h/1\"}]}") };
        request.Headers.Add("X-CSRF-Token", csrf);
        var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("could not be applied, nothing changed: factory bug", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(host.ConfigPath));
        Assert.Contains(host.Supervisor.Snapshot(), p => p.Name == "camera/door");
    }

    [Fact]
    public async Task Reloading_an_edited_file_applies_it_and_a_broken_file_keeps_the_running_config()
    {
        await using var host = await EdgeTestHost.StartAsync();
        var store = host.App.Services.GetRequiredService<EdgeConfigStore>();
        await EdgeTestHost.WaitUntilAsync(() => host.Starts.Count("camera/pi") == 1, TimeSpan.FromSeconds(10), "started");
        var good = await File.ReadAllTextAsync(host.ConfigPath);

        await File.WriteAllTextAsync(host.ConfigPath, good.Replace("\"line\": 17", "\"line\": \"seventeen\"", StringComparison.Ordinal));
        var refused = await store.ReloadAsync();
        Assert.Equal("sensors[1].line: expected an integer, got a string", Assert.Single(refused.Problems).ToString());
        Assert.Equal(17, store.Current.Sensors[1].Line);

        await File.WriteAllTextAsync(host.ConfigPath, good.Replace("\"line\": 17", "\"line\": 18", StringComparison.Ordinal));
        var applied = await store.ReloadAsync();
        Assert.Equal(["sensor/door_contact"], applied.Applied!.Restarted);
        Assert.Equal(18, store.Current.Sensors[1].Line);
        await EdgeTestHost.WaitUntilAsync(() => host.Starts.Count("sensor/door_contact") == 2, TimeSpan.FromSeconds(10), "restart");
        Assert.Equal(1, host.Starts.Count("camera/pi"));
    }

    [Fact]
    public async Task A_port_in_use_is_one_line_and_a_non_zero_exit()
    {
        using var occupied = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        occupied.Start();
        var port = ((IPEndPoint)occupied.LocalEndpoint).Port;
        using var dir = new TempConfigDir();
        var file = dir.Write(TempConfigDir.Sample($"http://127.0.0.1:{port}"));
        var errors = new StringWriter();
        var exit = await Program.RunAsync(["--config", file], new StringWriter(), errors,
            o => o.Systemd = Pinhole.EdgeHost.Systemd.SystemdEnvironment.None);
        Assert.Equal(Program.ExitFailed, exit);
        var line = Assert.Single(errors.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"pinhole-edge: cannot listen on http://127.0.0.1:{port}:", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_configured_password_nobody_gets_in()
    {
        var json = TempConfigDir.Sample().Replace($", \"password\": \"{TempConfigDir.Password}\"", "", StringComparison.Ordinal);
        await using var host = await EdgeTestHost.StartAsync(json);
        using var client = host.CreateClient();
        var response = await client.PostAsync("/login", new FormUrlEncodedContent([new("password", "")]));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("No password is set: add web.password to edge.json", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/status")).StatusCode);
    }

    [Fact]
    public async Task Logout_needs_the_csrf_token_and_ends_the_session()
    {
        await using var host = await EdgeTestHost.StartAsync();
        using var client = host.CreateClient();
        var csrf = await LogInAsync(client);

        var forged = await client.PostAsync("/logout", new FormUrlEncodedContent([new("csrf", "guess")]));
        Assert.Equal(HttpStatusCode.Forbidden, forged.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/status")).StatusCode);

        var logout = await client.PostAsync("/logout", new FormUrlEncodedContent([new("csrf", csrf)]));
        Assert.Equal(HttpStatusCode.Redirect, logout.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/status")).StatusCode);
    }

    [Fact]
    public async Task Wrong_passwords_are_throttled_per_client_even_for_the_right_password()
    {
        var throttle = new LoginThrottleOptions { FreeFailures = 2, FreeFailuresPerAccount = 9, FirstLockout = TimeSpan.FromSeconds(2), MaxLockout = TimeSpan.FromSeconds(30) };
        await using var host = await EdgeTestHost.StartAsync(throttle: throttle);
        using var client = host.CreateClient();

        async Task<HttpResponseMessage> Try(string password) =>
            await client.PostAsync("/login", new FormUrlEncodedContent([new("password", password)]));

        Assert.Equal(HttpStatusCode.Unauthorized, (await Try("nope1")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Try("nope2")).StatusCode);
        var third = await Try("nope3");
        Assert.Equal(HttpStatusCode.Unauthorized, third.StatusCode);
        Assert.Contains("try again in 2 s", await third.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var locked = await Try(TempConfigDir.Password);
        Assert.Equal(HttpStatusCode.TooManyRequests, locked.StatusCode);
        Assert.NotNull(locked.Headers.RetryAfter);

        await Task.Delay(2100);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Try("nope4")).StatusCode);
        var longer = await Try(TempConfigDir.Password);
        Assert.Equal(HttpStatusCode.TooManyRequests, longer.StatusCode);
        Assert.Contains("Try again in 4 s", await longer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public void Password_hashes_round_trip_and_verify()
    {
        var hash = PasswordHash.Create("s3cret", iterations: 2000);
        Assert.True(hash.Verify("s3cret"));
        Assert.False(hash.Verify("s3cret "));
        Assert.True(PasswordHash.TryParse(hash.ToString(), out var parsed));
        Assert.True(parsed.Verify("s3cret"));
        Assert.StartsWith(PasswordHash.Prefix + "2000$", hash.ToString(), StringComparison.Ordinal);
        Assert.True(PasswordHash.FromConfig(hash.ToString()).Verify("s3cret"));
        Assert.False(PasswordHash.TryParse("pbkdf2-sha256$10$AAAA$AAAA", out _));
    }
}
