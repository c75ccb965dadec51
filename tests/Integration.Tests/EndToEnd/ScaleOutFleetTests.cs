using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 19's shared state with real processes (docs/scale-out.md): two relay processes, each with its own dataDir, on
/// one real PostgreSQL; the device (the real edge under <c>image/pinhole-launch</c> in a restart loop, as in UpdateTests)
/// has its uplink on relay B. A bundle added and a rollout started with relay A's config reach it through relay B: it
/// downloads, installs and commits the release. Relay A's device list and `devices list` show it online on relay B.
/// </summary>
[Collection(EndToEnd.Collection)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ScaleOutFleetTests(ITestOutputHelper output)
{
    private static async Task<string> CliAsync(string config, params string[] args)
    {
        var arguments = new List<string> { EndToEnd.RelayDll };
        arguments.AddRange(args);
        if (config.Length > 0) arguments.AddRange(["--config", config]);
        var result = await Command.RunAsync("dotnet", arguments, TimeSpan.FromSeconds(90));
        Assert.True(result.Succeeded, $"pinhole-relay {string.Join(' ', args)}: {result}");
        return result.StandardOutput;
    }

    private static async Task<JsonObject> DeviceInListAsync(HttpClient api) =>
        (JsonObject)JsonNode.Parse(await api.GetStringAsync(new Uri("/api/devices", UriKind.Relative)))!.AsArray()
            .Single(d => d!["id"]!.GetValue<string>() == EndToEnd.Device)!;

    private static async Task<JsonObject> WaitForAsync(HttpClient api, Func<JsonObject, bool> condition, string what, TimeSpan timeout, Func<string> logs)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var d = await DeviceInListAsync(api);
            try
            {
                if (condition(d)) return d;
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException)
            {
                // a field not there yet
            }
            Assert.True(DateTime.UtcNow < deadline, $"not {what} within {timeout.TotalSeconds:0} s: {d.ToJsonString()}\n{logs()}");
            await Task.Delay(250);
        }
    }

    [RequiresFact(Needs.RtspCamera | Needs.Postgres)]
    public async Task A_release_added_and_rolled_out_through_one_relay_installs_on_a_device_whose_uplink_is_on_the_other()
    {
        await using var postgres = await PostgresServer.StartAsync();
        await postgres.CreateDatabaseAsync("fleet");
        var database = postgres.DatabaseUrl("fleet");
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25 });
        var dir = EndToEnd.NewWorkDir("scaleout-fleet");
        int httpA = FreePort.Get(), httpB = FreePort.Get();
        string Relay(int http) => EndToEnd.WriteRelayConfig(dir, "127.0.0.1", http, FreePort.Get(), new Dictionary<string, object>
        {
            ["database"] = database,
            ["publicUrl"] = $"http://127.0.0.1:{http}",
        });
        var configA = Relay(httpA);
        var configB = Relay(httpB);
        PeerProcess? a = null, b = null, device = null;
        string Logs() => EndToEnd.Describe(device, a, b);
        try
        {
            var started = await Task.WhenAll(PeerProcess.StartAsync(EndToEnd.RelayStartInfo(configA, output, "relayA")),
                PeerProcess.StartAsync(EndToEnd.RelayStartInfo(configB, output, "relayB")));
            (a, b) = (started[0], started[1]);
            var token = (await CliAsync(configA, "tokens", "add", "ci")).Trim();
            using var apiA = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpA}"), Timeout = TimeSpan.FromSeconds(30) };
            using var apiB = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpB}"), Timeout = TimeSpan.FromSeconds(30) };
            apiA.DefaultRequestHeaders.Authorization = apiB.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

            // The device as installed: releases/1.0.0 and the current link, the launcher in a restart loop, its uplink on relay B.
            var keys = Path.Combine(dir, "keys");
            await CliAsync("", "releases", "keygen", "--out", keys);
            var root = Path.Combine(dir, "opt");
            var build = Path.Combine(dir, "build");
            UpdateRig.MakeBuild(build);
            UpdateRig.CopyDirectory(build, Path.Combine(root, "releases", UpdateRig.BaseVersion));
            File.WriteAllText(Path.Combine(root, "releases", UpdateRig.BaseVersion, "release.json"), $$"""{"version":"{{UpdateRig.BaseVersion}}","architecture":"any"}""");
            File.CreateSymbolicLink(Path.Combine(root, "current"), "releases/" + UpdateRig.BaseVersion);
            var edgeConfig = Path.Combine(dir, "edge.json");
            File.WriteAllText(edgeConfig, JsonSerializer.Serialize(new
            {
                deviceId = EndToEnd.Device,
                token = EndToEnd.Token,
                relays = new[] { $"ws://127.0.0.1:{httpB}/uplink" },
                cameras = new[] { new { name = EndToEnd.CameraName, source = camera.UrlWithCredentials.ToString() } },
                web = new { listen = $"http://127.0.0.1:{FreePort.Get()}", password = "edge-page-password" },
                dataDir = Path.Combine(dir, "edge-data"),
                update = new { publicKey = Path.Combine(keys, "release.pub"), root, trialTimeout = "12s" },
            }));
            var loop = $"while true; do sh '{UpdateRig.Launcher}' '{root}' --config '{edgeConfig}'; echo \"loop: exited $?\"; sleep 0.5; done";
            device = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", loop)
            {
                Name = "device",
                WorkingDirectory = dir,
                OnOutputLine = line =>
                {
                    try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} device {line}"); }
                    catch (InvalidOperationException) { }
                },
                OutputLines = 3000,
            });

            // Relay A's device list shows the device online, on relay B.
            await WaitForAsync(apiB, d => d["online"]!.GetValue<bool>() && d["version"]!.GetValue<string>() == UpdateRig.BaseVersion, "online on relay B", TimeSpan.FromSeconds(60), Logs);
            var onA = await WaitForAsync(apiA, d => d["online"]!.GetValue<bool>(), "listed online by relay A", TimeSpan.FromSeconds(15), Logs);
            Assert.Equal($"http://127.0.0.1:{httpB}", onA["relay"]!.GetValue<string>());
            Assert.Contains($"online=http://127.0.0.1:{httpB}", await CliAsync(configA, "devices", "list", "--long"), StringComparison.Ordinal);

            // Packed, added and rolled out with relay A's config only: relay B's dataDir has no bundle.
            var bundle = Path.Combine(dir, "pinhole-edge-2.0.0.bundle");
            var release = Path.Combine(dir, "src-2.0.0");
            UpdateRig.MakeBuild(release);
            await CliAsync("", "releases", "pack", release, "--version", "2.0.0", "--key", Path.Combine(keys, "release.key"), "--out", bundle);
            await CliAsync(configA, "releases", "add", bundle);
            var dataB = Path.Combine(dir, $"relay-data-{httpB}");
            Assert.False(File.Exists(Path.Combine(dataB, "releases", "2.0.0", "any.bundle")));
            var clock = System.Diagnostics.Stopwatch.StartNew();
            await CliAsync(configA, "rollout", "start", "2.0.0", "--devices", EndToEnd.Device);

            // Offered by relay B from the database's copy, downloaded, installed, on trial, committed; both relays see it.
            var done = await WaitForAsync(apiA, d => d["update"]!["version"]!.GetValue<string>() == "2.0.0" && d["update"]!["state"]!.GetValue<string>() == "committed"
                && d["online"]!.GetValue<bool>() && d["version"]!.GetValue<string>() == "2.0.0", "committed 2.0.0", TimeSpan.FromSeconds(120), Logs);
            output.WriteLine($"rollout started through relay A -> committed on the device behind relay B: {clock.Elapsed.TotalSeconds:0.0} s; {done.ToJsonString()}");
            Assert.Equal($"http://127.0.0.1:{httpB}", done["relay"]!.GetValue<string>());
            Assert.Equal("releases/2.0.0", new FileInfo(Path.Combine(root, "current")).LinkTarget);
            Assert.Equal(File.ReadAllBytes(bundle), File.ReadAllBytes(Path.Combine(dataB, "releases", "2.0.0", "any.bundle")));
            // The rollout (shared) is done once a relay's once-a-second check sees every staged device committed.
            var statusDeadline = DateTime.UtcNow.AddSeconds(10);
            string status;
            while (!(status = await CliAsync(configB, "rollout", "status")).Contains("rollout 1: 2.0.0 done", StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < statusDeadline, "the rollout is not done: " + status);
                await Task.Delay(500);
            }
        }
        finally
        {
            if (device is not null) await device.DisposeAsync();
            if (a is not null) await a.DisposeAsync();
            if (b is not null) await b.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
