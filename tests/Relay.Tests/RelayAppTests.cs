using System.Diagnostics;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Tests;

public sealed class RelayAppTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-relay-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Starts_on_a_free_port_and_serves_healthz_and_metrics()
    {
        var config = new RelayConfig { Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = _dir, Metrics = new MetricsConfig { Public = true } };
        await using var relay = await RelayApp.StartAsync(config);
        using var http = new HttpClient { BaseAddress = relay.HttpUri };

        var health = await http.GetAsync(new Uri("/healthz", UriKind.Relative));
        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);

        relay.Services.GetRequiredService<Pinhole.Streaming.MediaStreamRegistry>().GetOrAdd("gw1", "door");
        var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("pinhole_relay_viewers{} 0", metrics, StringComparison.Ordinal);
        Assert.Contains("pinhole_relay_stream_online{camera=\"door\",device=\"gw1\"} 0", metrics, StringComparison.Ordinal);
        Assert.Equal("ws", relay.UplinkUri.Scheme);
        Assert.Equal("/uplink", relay.UplinkUri.AbsolutePath);
    }

    [Fact]
    public async Task Two_relays_in_one_process_each_export_only_their_own_series_with_the_documented_names()
    {
        // A MeterProvider listens to every meter of its name in the process; each relay must export
        // only the instruments of its own host (tests, and any process hosting two relays).
        var second = Directory.CreateTempSubdirectory("pinhole-relay-").FullName;
        try
        {
            RelayConfig Config(string dir) => new() { Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = dir, Metrics = new MetricsConfig { Public = true } };
            await using var a = await RelayApp.StartAsync(Config(_dir));
            await using var b = await RelayApp.StartAsync(Config(second));
            a.Services.GetRequiredService<Pinhole.Streaming.MediaStreamRegistry>().GetOrAdd("gw-a", "door");
            b.Services.GetRequiredService<Pinhole.Streaming.MediaStreamRegistry>().GetOrAdd("gw-b", "door");
            a.Services.GetRequiredService<Pinhole.Relay.Security.RefusalLog>().Refused("test-cause", "192.0.2.1", "test");
            using var httpA = new HttpClient { BaseAddress = a.HttpUri };
            using var httpB = new HttpClient { BaseAddress = b.HttpUri };
            var textA = await httpA.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            var textB = await httpB.GetStringAsync(new Uri("/metrics", UriKind.Relative));

            Assert.Contains("pinhole_relay_stream_online{camera=\"door\",device=\"gw-a\"} 0", textA, StringComparison.Ordinal);
            Assert.DoesNotContain("gw-b", textA, StringComparison.Ordinal);
            Assert.Contains("pinhole_relay_stream_online{camera=\"door\",device=\"gw-b\"} 0", textB, StringComparison.Ordinal);
            Assert.DoesNotContain("gw-a", textB, StringComparison.Ordinal);
            Assert.Contains("pinhole_relay_refusals_total{cause=\"test-cause\"} 1", textA, StringComparison.Ordinal);
            Assert.DoesNotContain("test-cause", textB, StringComparison.Ordinal);
            // Exactly one series of each RTSP counter per relay (not one per relay in the process).
            Assert.Single(textA.Split('\n'), l => l.StartsWith("pinhole_rtsp_sessions_total", StringComparison.Ordinal));
            // The names as documented: counters keep their one _total, no unit suffix, no scope label, no target_info.
            Assert.Contains("# TYPE pinhole_rtsp_sessions_total counter", textA, StringComparison.Ordinal);
            Assert.DoesNotContain("_total_total", textA, StringComparison.Ordinal);
            Assert.DoesNotContain("otel_scope", textA, StringComparison.Ordinal);
            Assert.DoesNotContain("target_info", textA, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(second, recursive: true);
        }
    }

    [Fact]
    public async Task A_relay_serving_WebRtc_stops_cleanly()
    {
        // The WebRTC server is both a service and a hosted service; shutting down once threw
        // ObjectDisposedException from its second Dispose and the relay exited 1 on SIGTERM.
        var config = new RelayConfig
        {
            Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = _dir,
            WebRtc = new WebRtcConfig { Udp = "127.0.0.1:0" },
        };
        var relay = await RelayApp.StartAsync(config);
        var error = await Record.ExceptionAsync(() => relay.DisposeAsync().AsTask());
        Assert.Null(error);
    }

    private static (int Code, string Out, string Err) RunCli(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "pinhole-relay.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(60_000)) { p.Kill(true); throw new TimeoutException("pinhole-relay did not exit"); }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void Cli_check_config_prints_one_line_per_problem_and_no_stack_trace()
    {
        var file = Path.Combine(_dir, "relay.json");
        File.WriteAllText(file, """{ "http": "nope", "extra": true }""");

        var (code, _, err) = RunCli("check-config", file);

        Assert.NotEqual(0, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Contains(lines, l => l.EndsWith("extra: unknown key", StringComparison.Ordinal));
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_missing_config_file_is_one_clear_line()
    {
        var (code, _, err) = RunCli("--config", Path.Combine(_dir, "absent.json"));
        Assert.Equal(1, code);
        Assert.Contains("cannot read", err, StringComparison.Ordinal);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void Cli_devices_add_prints_a_token_that_then_checks_out()
    {
        var file = Path.Combine(_dir, "relay.json");
        File.WriteAllText(file, $$"""{ "dataDir": "{{_dir.Replace("\\", "\\\\", StringComparison.Ordinal)}}/data" }""");

        var (code, token, err) = RunCli("devices", "add", "gw7", "--config", file);
        Assert.True(code == 0, err);
        token = token.Trim();
        Assert.True(token.Length >= 40);

        var (listCode, list, _) = RunCli("devices", "list", "--config", file);
        Assert.Equal(0, listCode);
        Assert.Equal("gw7", list.Trim());

        var (again, _, againErr) = RunCli("devices", "add", "gw7", "--config", file);
        Assert.Equal(1, again);
        Assert.Contains("already exists", againErr, StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_devices_list_shows_the_link_rate_a_device_last_reported()
    {
        var file = Path.Combine(_dir, "relay.json");
        File.WriteAllText(file, $$"""{ "dataDir": "{{_dir.Replace("\\", "\\\\", StringComparison.Ordinal)}}/data" }""");
        var (code, _, err) = RunCli("devices", "add", "gw7", "--config", file);
        Assert.True(code == 0, err);
        (code, _, err) = RunCli("devices", "add", "gw8", "--config", file);
        Assert.True(code == 0, err);
        using (var store = new Pinhole.Relay.Fleet.SqliteFleetStore(Path.Combine(_dir, "data")))
        {
            // What the relay stores when gw7's status documents arrive: 250 000 B/s is 2000 kbit/s.
            store.SetSeen("gw7", DateTimeOffset.UtcNow, "127.0.0.1", "pinhole-edge/1.2.0 (linux-x64)");
            store.SetLinkRate("gw7", 250_000, DateTimeOffset.UtcNow);
        }

        var (listCode, list, _) = RunCli("devices", "list", "--config", file);
        Assert.Equal(0, listCode);
        Assert.Equal(["gw7\t1.2.0\tlink=2000kbit/s", "gw8"], list.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var (_, longList, _) = RunCli("devices", "list", "--long", "--config", file);
        var lines = longList.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith("\tversion=1.2.0\tlink=2000kbit/s", lines[0], StringComparison.Ordinal);
        Assert.EndsWith("\tversion=-\tlink=-", lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_help_lists_the_commands()
    {
        var (code, output, _) = RunCli("--help");
        Assert.Equal(0, code);
        Assert.Contains("check-config", output, StringComparison.Ordinal);
        Assert.Contains("devices", output, StringComparison.Ordinal);
        Assert.Contains("--config", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "bogus" }, "Unrecognized command or argument 'bogus'")]
    [InlineData(new[] { "tunnel" }, "Option '--listen' is required")]
    [InlineData(new[] { "devices", "add" }, "Required argument missing")]
    public void Cli_usage_errors_are_one_line_with_exit_code_2(string[] args, string expected)
    {
        var (code, output, err) = RunCli(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("pinhole-relay: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.EndsWith("see pinhole-relay --help", line.TrimEnd(), StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_help_word_is_the_help_option()
    {
        var (code, output, _) = RunCli("help");
        Assert.Equal(0, code);
        Assert.Contains("check-config", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_rotates_revokes_lists_and_makes_api_tokens_and_audits_each_change()
    {
        var file = Path.Combine(_dir, "relay.json");
        File.WriteAllText(file, $$"""{ "dataDir": "{{_dir.Replace("\\", "\\\\", StringComparison.Ordinal)}}/data" }""");
        var (code, first, err) = RunCli("devices", "add", "gw7", "--config", file);
        Assert.True(code == 0, err);

        (code, var second, err) = RunCli("devices", "rotate-token", "gw7", "--config", file);
        Assert.True(code == 0, err);
        Assert.NotEqual(first.Trim(), second.Trim());
        (code, _, err) = RunCli("devices", "revoke", "gw7", "--config", file);
        Assert.True(code == 0, err);
        var (_, list, _) = RunCli("devices", "list", "--long", "--config", file);
        Assert.StartsWith("gw7\tstored\trevoked\tnever-seen\t", list, StringComparison.Ordinal);
        (code, _, err) = RunCli("devices", "revoke", "nope", "--config", file);
        Assert.Equal(1, code);
        Assert.Equal("pinhole-relay: no device \"nope\"", err.Trim());

        (code, var token, err) = RunCli("tokens", "add", "deploy-bot", "--config", file);
        Assert.True(code == 0, err);
        Assert.StartsWith("pht_", token, StringComparison.Ordinal);
        (code, _, err) = RunCli("tokens", "add", "deploy-bot", "--config", file);
        Assert.Equal(1, code);
        Assert.Contains("already exists", err, StringComparison.Ordinal);

        using var store = new Pinhole.Relay.Fleet.SqliteFleetStore(Path.Combine(_dir, "data"));
        Assert.Equal("deploy-bot", Pinhole.Relay.Fleet.ApiTokens.Authenticate(store, token.Trim()));
        var audit = store.ReadAudit(10);
        Assert.Equal(["token.add", "device.revoke", "device.rotate-token", "device.add"], audit.Select(a => a.Action));
        Assert.All(audit, a => Assert.Equal(("cli:" + Environment.UserName, "local"), (a.Actor, a.Source)));
        Assert.DoesNotContain(audit, a => a.Detail.Contains(token.Trim(), StringComparison.Ordinal) || a.Detail.Contains(second.Trim(), StringComparison.Ordinal));
    }
}
