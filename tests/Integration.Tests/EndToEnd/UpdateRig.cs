using System.Diagnostics;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 12's device as it runs in the field, with a shell loop playing systemd's <c>Restart=always</c>:
/// <c>while true; do pinhole-launch ROOT --config edge.json; sleep 0.5; done</c>, where ROOT holds
/// <c>releases/1.0.0/</c> (the built edge plus a <c>pinhole-edge</c> script running <c>dotnet pinhole-edge.dll</c>)
/// and the <c>current</c> link. Beside it a real relay (child process), a GStreamer RTSP camera, and the
/// relay CLI for keys, bundles and rollouts.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class UpdateRig : IAsyncDisposable
{
    public const string AdminUser = "admin";
    public const string AdminPassword = "admin-pass";
    public const string BaseVersion = "1.0.0";
    private readonly ITestOutputHelper _output;
    private HttpClient? _api;

    private UpdateRig(ITestOutputHelper output, RtspCamera camera, string dir)
    {
        _output = output;
        Camera = camera;
        Dir = dir;
    }

    public RtspCamera Camera { get; }
    public string Dir { get; }
    public string Root => Path.Combine(Dir, "opt");
    public string KeyDir => Path.Combine(Dir, "keys");
    public string BuildDir => Path.Combine(Dir, "build");
    public int HttpPort { get; } = FreePort.Get();
    public int RtspPort { get; } = FreePort.Get();
    public int WebPort { get; } = FreePort.Get();
    public string RelayConfigPath => Path.Combine(Dir, "relay.json");
    public string EdgeConfigPath => Path.Combine(Dir, "edge.json");
    public string RelayDataDir => Path.Combine(Dir, "relay-data");
    public PeerProcess? Relay { get; private set; }
    public PeerProcess? Device { get; private set; }
    public string Logs => EndToEnd.Describe(Device, Relay);
    public Uri RtspUrl => new($"rtsp://{AdminUser}:{AdminPassword}@127.0.0.1:{RtspPort}/{EndToEnd.Device}/{EndToEnd.CameraName}");
    public string UplinkUrl => $"ws://127.0.0.1:{HttpPort}/uplink";

    /// <summary>The launcher under test: the repository's <c>image/pinhole-launch</c>.</summary>
    public static string Launcher => Path.Combine(RepoPaths.Root, "image", "pinhole-launch");

    public static async Task<UpdateRig> StartAsync(ITestOutputHelper output, string trialTimeout = "12s", Func<UpdateRig, string>? uplink = null)
    {
        var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25 });
        var rig = new UpdateRig(output, camera, EndToEnd.NewWorkDir("update"));
        try
        {
            File.WriteAllText(rig.RelayConfigPath, JsonSerializer.Serialize(new
            {
                http = $"http://127.0.0.1:{rig.HttpPort}",
                rtsp = $"127.0.0.1:{rig.RtspPort}",
                dataDir = rig.RelayDataDir,
                devices = new[] { new { id = EndToEnd.Device, token = EndToEnd.Token } },
                viewers = new object[] { new { user = AdminUser, password = AdminPassword, role = "admin" } },
                rtspBasicOverPlaintext = true,
            }));
            var token = (await rig.CliCheckedAsync("tokens", "add", "ci")).Trim();
            rig._api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{rig.HttpPort}"), Timeout = TimeSpan.FromSeconds(30) };
            rig._api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            await rig.CliCheckedAsync(withConfig: false, "releases", "keygen", "--out", rig.KeyDir);

            // The edge build every release is made from, and the fresh install: releases/1.0.0 and the link.
            MakeBuild(rig.BuildDir);
            CopyDirectory(rig.BuildDir, Path.Combine(rig.Root, "releases", BaseVersion));
            File.WriteAllText(Path.Combine(rig.Root, "releases", BaseVersion, "release.json"), $$"""{"version":"{{BaseVersion}}","architecture":"any"}""");
            File.CreateSymbolicLink(Path.Combine(rig.Root, "current"), "releases/" + BaseVersion);

            File.WriteAllText(rig.EdgeConfigPath, JsonSerializer.Serialize(new
            {
                deviceId = EndToEnd.Device,
                token = EndToEnd.Token,
                relays = new[] { uplink?.Invoke(rig) ?? rig.UplinkUrl },
                cameras = new[] { new { name = EndToEnd.CameraName, source = camera.UrlWithCredentials.ToString() } },
                web = new { listen = $"http://127.0.0.1:{rig.WebPort}", password = "edge-page-password" },
                dataDir = Path.Combine(rig.Dir, "edge-data"),
                update = new { publicKey = Path.Combine(rig.KeyDir, "release.pub"), root = rig.Root, trialTimeout },
            }));
            rig.Relay = await PeerProcess.StartAsync(EndToEnd.RelayStartInfo(rig.RelayConfigPath, output));
            await rig.StartDeviceAsync();
            return rig;
        }
        catch
        {
            await rig.DisposeAsync();
            throw;
        }
    }

    /// <summary>The built edge (next to this assembly) as a release folder, with the <c>pinhole-edge</c> script the service starts.</summary>
    public static void MakeBuild(string dir, string? script = null) => EdgeReleaseFolder.Make(dir, script);

    public static void CopyDirectory(string from, string to) => EdgeReleaseFolder.CopyDirectory(from, to);

    public async Task StartDeviceAsync()
    {
        var loop = $"while true; do sh '{Launcher}' '{Root}' --config '{EdgeConfigPath}'; echo \"loop: exited $?\"; sleep 0.5; done";
        Device = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", loop)
        {
            Name = "device",
            WorkingDirectory = Dir,
            OnOutputLine = line =>
            {
                try { _output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} device {line}"); }
                catch (InvalidOperationException) { }
            },
            OutputLines = 3000,
        });
    }

    /// <summary>kill -9 of the loop, the launcher and the edge at once (a power cut).</summary>
    public async Task KillDeviceAsync()
    {
        if (Device is null) return;
        Device.Kill();
        await Device.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await Device.DisposeAsync();
        Device = null;
    }

    /// <summary>Packs <paramref name="folder"/> as <paramref name="version"/> with the CLI and stores it on the relay.</summary>
    public async Task<string> AddReleaseAsync(string version, string folder, string? key = null, string? arch = null)
    {
        var bundle = Path.Combine(Dir, $"pinhole-edge-{version}.bundle");
        var args = new List<string> { "releases", "pack", folder, "--version", version, "--key", key ?? Path.Combine(KeyDir, "release.key"), "--out", bundle };
        if (arch is not null) args.AddRange(["--arch", arch]);
        await CliCheckedAsync(withConfig: false, [.. args]);
        await CliCheckedAsync("releases", "add", bundle);
        return bundle;
    }

    /// <summary>A release folder: the build with another <c>pinhole-edge</c> script (null: the working one).</summary>
    public string MakeRelease(string name, string? script = null)
    {
        var dir = Path.Combine(Dir, "src-" + name);
        MakeBuild(dir, script);
        return dir;
    }

    public Task<string> RolloutAsync(string version, params string[] extra) =>
        CliCheckedAsync(["rollout", "start", version, "--devices", EndToEnd.Device, .. extra]);

    public async Task<JsonNode> DeviceAsync() => JsonNode.Parse(await _api!.GetStringAsync(new Uri($"/api/devices/{EndToEnd.Device}", UriKind.Relative)))!;

    public async Task<JsonNode> WaitForDeviceAsync(Func<JsonNode, bool> condition, string what, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        JsonNode device;
        while (true)
        {
            device = await DeviceAsync();
            try
            {
                if (condition(device)) return device;
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException)
            {
                // a field not there yet
            }
            if (DateTime.UtcNow >= deadline) break;
            await Task.Delay(200);
        }
        Assert.Fail($"not {what} within {timeout.TotalSeconds:0.#} s: {device.ToJsonString()}\n{Logs}");
        return device;
    }

    public static string? UpdateState(JsonNode d, string version) =>
        d["update"] is JsonObject u && u["version"]?.GetValue<string>() == version ? u["state"]?.GetValue<string>() : null;

    public static bool RunsOnline(JsonNode d, string version) =>
        d["online"]!.GetValue<bool>() && d["version"]?.GetValue<string>() == version;

    /// <summary>The release <c>ROOT/current</c> points at.</summary>
    public string? CurrentRelease() => new FileInfo(Path.Combine(Root, "current")).LinkTarget is { } t ? Path.GetFileName(t) : null;

    public Task<string> CliCheckedAsync(params string[] args) => CliCheckedAsync(withConfig: true, args);

    public async Task<string> CliCheckedAsync(bool withConfig, params string[] args)
    {
        var (code, stdout, stderr) = await CliAsync(withConfig, args);
        Assert.True(code == 0, $"pinhole-relay {string.Join(' ', args)}: exit {code}\n{stdout}\n{stderr}");
        return stdout;
    }

    public async Task<(int Code, string Out, string Err)> CliAsync(bool withConfig, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(EndToEnd.RelayDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (withConfig)
        {
            psi.ArgumentList.Add("--config");
            psi.ArgumentList.Add(RelayConfigPath);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    public async ValueTask DisposeAsync()
    {
        _api?.Dispose();
        if (Device is not null) await Device.DisposeAsync();
        if (Relay is not null) await Relay.DisposeAsync();
        await Camera.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
