using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pinhole.Integration.Tests.Uplink;
using Pinhole.Relay.Updates;
using Pinhole.Testing;
using Pinhole.Transport.Updates;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 12, remote updates, with real processes: the relay, the device under a shell loop playing
/// systemd's <c>Restart=always</c> around <c>image/pinhole-launch</c>, the GStreamer camera played through
/// the relay with ffprobe. Trial timeout 12 s.
/// </summary>
[Collection(EndToEnd.Collection)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed partial class UpdateTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Trial = TimeSpan.FromSeconds(12);

    // Runs, but its uplink goes to a path the relay does not serve: it never connects.
    private const string NeverConnects = """
        #!/bin/sh
        cfg=$2
        sed 's#/uplink"#/nowhere"#' "$cfg" > "$cfg.never.json"
        exec dotnet "$(dirname "$0")/pinhole-edge.dll" --config "$cfg.never.json"
        """;

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task A_rollout_commits_and_releases_that_crash_or_never_connect_are_rolled_back_with_the_reason()
    {
        await using var rig = await UpdateRig.StartAsync(output, "12s");
        await rig.WaitForDeviceAsync(d => UpdateRig.RunsOnline(d, UpdateRig.BaseVersion), "online with 1.0.0", TimeSpan.FromSeconds(60));

        // 2.0.0 works: downloaded, switched, on trial, committed; the relay lists the new version.
        await rig.AddReleaseAsync("2.0.0", rig.MakeRelease("good"));
        var clock = Stopwatch.StartNew();
        await rig.RolloutAsync("2.0.0");
        await rig.WaitForDeviceAsync(d => UpdateRig.UpdateState(d, "2.0.0") == "committed" && UpdateRig.RunsOnline(d, "2.0.0"), "committed 2.0.0", TimeSpan.FromSeconds(90));
        output.WriteLine($"rollout start -> committed: {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal("2.0.0", rig.CurrentRelease());
        Assert.False(File.Exists(Path.Combine(rig.Root, "trial")));
        Assert.Equal("2.0.0", File.ReadAllText(Path.Combine(rig.Root, "committed")).Trim());
        Assert.Contains($"{EndToEnd.Device}\t2.0.0", await rig.CliCheckedAsync("devices", "list"), StringComparison.Ordinal);
        var probe = await EndToEnd.ProbeUntilPlayingAsync(rig.RtspUrl, TimeSpan.FromSeconds(60), frames: 10);
        Assert.True(probe.Succeeded && probe.Video!.FramesDecoded >= 10, $"camera not playable after the update\n{probe}\n{rig.Logs}");

        // 3.0.0's pinhole-edge exits at once: rolled back within the trial timeout + 30 s, with the exit code.
        await rig.AddReleaseAsync("3.0.0", rig.MakeRelease("crash", "#!/bin/sh\necho 'broken release' >&2\nexit 3\n"));
        clock.Restart();
        await rig.RolloutAsync("3.0.0");
        var device = await rig.WaitForDeviceAsync(d => UpdateRig.UpdateState(d, "3.0.0") == "rolled-back" && UpdateRig.RunsOnline(d, "2.0.0"),
            "3.0.0 rolled back and 2.0.0 running", Trial + TimeSpan.FromSeconds(30));
        output.WriteLine($"crashing release rolled back {clock.Elapsed.TotalSeconds:0.0} s after the rollout started: {device["update"]}");
        Assert.Contains("exited with code 3", device["update"]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("2.0.0", rig.CurrentRelease());

        // 4.0.0 runs but never connects: killed at the trial timeout and rolled back, the unmet condition quoted.
        await rig.AddReleaseAsync("4.0.0", rig.MakeRelease("never", NeverConnects));
        clock.Restart();
        await rig.RolloutAsync("4.0.0");
        device = await rig.WaitForDeviceAsync(d => UpdateRig.UpdateState(d, "4.0.0") == "rolled-back" && UpdateRig.RunsOnline(d, "2.0.0"),
            "4.0.0 rolled back and 2.0.0 running", Trial + TimeSpan.FromSeconds(30));
        output.WriteLine($"never-connecting release rolled back {clock.Elapsed.TotalSeconds:0.0} s after the rollout started: {device["update"]}");
        var detail = device["update"]!["detail"]!.GetValue<string>();
        Assert.Contains("did not prove itself within 12s", detail, StringComparison.Ordinal);
        Assert.Contains("the uplink is not connected", detail, StringComparison.Ordinal);
        Assert.Equal("2.0.0", rig.CurrentRelease());
        probe = await EndToEnd.ProbeUntilPlayingAsync(rig.RtspUrl, TimeSpan.FromSeconds(60), frames: 10);
        Assert.True(probe.Succeeded && probe.Video!.FramesDecoded >= 10, $"camera not playable after the rollbacks\n{probe}\n{rig.Logs}");

        // The rollout halted itself (one device, one failure of one offered).
        var status = await rig.CliCheckedAsync("rollout", "status");
        Assert.Contains("4.0.0 halted: 1 of 1 devices failed", status, StringComparison.Ordinal);
        Assert.Contains("rolled-back", status, StringComparison.Ordinal);
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task Bad_signature_tampered_file_and_older_version_are_refused_and_another_architecture_is_not_offered_nothing_installed()
    {
        await using var rig = await UpdateRig.StartAsync(output, "12s");
        await rig.WaitForDeviceAsync(d => UpdateRig.RunsOnline(d, UpdateRig.BaseVersion), "online with 1.0.0", TimeSpan.FromSeconds(60));
        var good = rig.MakeRelease("good");

        // Signed with a key the device does not trust.
        await rig.CliCheckedAsync(withConfig: false, "releases", "keygen", "--out", Path.Combine(rig.Dir, "other-key"));
        await rig.AddReleaseAsync("2.0.0", good, key: Path.Combine(rig.Dir, "other-key", "release.key"));
        await rig.RolloutAsync("2.0.0");
        var d = await rig.WaitForDeviceAsync(x => UpdateRig.UpdateState(x, "2.0.0") == "refused", "2.0.0 refused", TimeSpan.FromSeconds(60));
        Assert.Contains("bad signature", d["update"]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // Properly signed, then one byte of one file changed on the relay's disk.
        var bundle = await rig.AddReleaseAsync("2.0.1", good);
        var stored = new ReleaseStore(rig.RelayDataDir).Get("2.0.1", "any")!.Path; // releases/2.0.1/any.bundle
        var bytes = File.ReadAllBytes(stored);
        bytes[^10] ^= 0x55; // inside the last file's content
        File.WriteAllBytes(stored, bytes);
        await rig.RolloutAsync("2.0.1");
        d = await rig.WaitForDeviceAsync(x => UpdateRig.UpdateState(x, "2.0.1") == "refused", "2.0.1 refused", TimeSpan.FromSeconds(60));
        Assert.Contains("tampered file", d["update"]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        _ = bundle;

        // Only for another architecture: the device says its own in its agent string, so the relay does not offer it
        // (the device's own refusal of a wrong-architecture bundle is in Transport.Tests' ReleaseBundleTests).
        var other = ReleaseBundle.CurrentArchitecture == "linux-arm64" ? "linux-x64" : "linux-arm64";
        await rig.AddReleaseAsync("2.0.2", good, arch: other);
        await rig.RolloutAsync("2.0.2");
        d = await rig.WaitForDeviceAsync(x => UpdateRig.UpdateState(x, "2.0.2") == "no-bundle", "2.0.2 not offered", TimeSpan.FromSeconds(60));
        Assert.Contains($"no bundle for this architecture ({ReleaseBundle.CurrentArchitecture})", d["update"]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(ReleaseBundle.CurrentArchitecture, d["architecture"]!.GetValue<string>());

        // Older than what runs (without --force).
        await rig.AddReleaseAsync("0.9.0", good);
        await rig.RolloutAsync("0.9.0");
        d = await rig.WaitForDeviceAsync(x => UpdateRig.UpdateState(x, "0.9.0") == "refused", "0.9.0 refused", TimeSpan.FromSeconds(60));
        Assert.Contains("not newer", d["update"]!["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // Nothing of any of them was installed; the device still runs 1.0.0.
        Assert.Equal(new[] { UpdateRig.BaseVersion }, Directory.GetDirectories(Path.Combine(rig.Root, "releases")).Select(p => Path.GetFileName(p)!).ToArray());
        Assert.Equal(UpdateRig.BaseVersion, rig.CurrentRelease());
        Assert.True(UpdateRig.RunsOnline(await rig.DeviceAsync(), UpdateRig.BaseVersion));
    }

    [GeneratedRegex(@"resuming (?<v>\S+) at byte (?<at>\d+) of (?<size>\d+)")]
    private static partial Regex Resuming();

    [RequiresFact(Needs.RtspCamera)]
    public async Task A_download_cut_in_the_middle_resumes_from_the_last_byte()
    {
        // The relay's bytes reach the device at 4 MB/s through a proxy that can cut the connection.
        TcpTestProxy? proxy = null;
        await using var rig = await UpdateRig.StartAsync(output, "12s", r =>
        {
            proxy = new TcpTestProxy(r.HttpPort, downstreamBytesPerSecond: 4_000_000);
            return $"ws://127.0.0.1:{proxy.Port}/uplink";
        });
        await using var _ = proxy!;
        await rig.WaitForDeviceAsync(d => UpdateRig.RunsOnline(d, UpdateRig.BaseVersion), "online with 1.0.0", TimeSpan.FromSeconds(60));
        var big = rig.MakeRelease("big");
        var filler = new byte[24 * 1024 * 1024];
        new Random(12).NextBytes(filler);
        File.WriteAllBytes(Path.Combine(big, "filler.bin"), filler);
        var bundle = await rig.AddReleaseAsync("2.0.0", big);
        var size = new FileInfo(bundle).Length;

        await rig.RolloutAsync("2.0.0");
        await rig.WaitForDeviceAsync(d => UpdateRig.UpdateState(d, "2.0.0") == "downloading" && d["update"]!["percent"]!.GetValue<int>() >= 20,
            "downloading past 20 %", TimeSpan.FromSeconds(60));
        var partial = Path.Combine(rig.Dir, "edge-data", "updates", "2.0.0.bundle.partial");
        proxy!.DropExisting();
        output.WriteLine($"cut the uplink with {new FileInfo(partial).Length} of {size} bytes on disk");

        var match = await rig.Device!.WaitForLineAsync(Resuming(), TimeSpan.FromSeconds(60));
        var at = long.Parse(match.Groups["at"].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(at >= size / 5 && at < size, $"resumed at {at} of {size}");
        await rig.WaitForDeviceAsync(d => UpdateRig.UpdateState(d, "2.0.0") == "committed" && UpdateRig.RunsOnline(d, "2.0.0"), "committed 2.0.0", TimeSpan.FromSeconds(120));
        Assert.Equal(filler, File.ReadAllBytes(Path.Combine(rig.Root, "releases", "2.0.0", "filler.bin")));
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task Kill_9_of_every_process_at_20_random_points_leaves_a_device_that_runs_a_working_release()
    {
        await using var rig = await UpdateRig.StartAsync(output, "10s");
        await rig.WaitForDeviceAsync(d => UpdateRig.RunsOnline(d, UpdateRig.BaseVersion), "online with 1.0.0", TimeSpan.FromSeconds(60));
        // A few MB, so a kill can land in the download and in the unpack too.
        var build = rig.MakeRelease("kill");
        var filler = new byte[6 * 1024 * 1024];
        new Random(9).NextBytes(filler);
        File.WriteAllBytes(Path.Combine(build, "filler.bin"), filler);
        var key = File.ReadAllText(Path.Combine(rig.KeyDir, "release.key"));
        var releases = new ReleaseStore(rig.RelayDataDir);
        using var rollouts = new UpdateStore(rig.RelayDataDir);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        output.WriteLine($"kill points from seed {seed}");
        var version = 10;
        for (var i = 0; i < 20; i++)
        {
            // Every other round a new version; otherwise the same one goes on (a kill mid-download resumes it).
            if (i % 2 == 0)
            {
                version++;
                var file = Path.Combine(rig.Dir, $"v{version}.bundle");
                ReleasePacker.Pack(build, $"{version}.0.0", key, file, "any");
                releases.Add(file);
                rollouts.Start($"{version}.0.0", [EndToEnd.Device], 100, 100, force: false, "test", DateTimeOffset.UtcNow);
            }
            var delay = TimeSpan.FromMilliseconds(random.Next(200, 9000));
            await Task.Delay(delay);
            var before = rig.CurrentRelease();
            await rig.KillDeviceAsync();
            var after = rig.CurrentRelease();
            output.WriteLine($"kill {i + 1}: {delay.TotalMilliseconds:0} ms after round start; current {before} -> {after}; trial: {File.Exists(Path.Combine(rig.Root, "trial"))}");
            // At every point the link names a whole release.
            Assert.NotNull(after);
            Assert.True(File.Exists(Path.Combine(rig.Root, "releases", after!, "pinhole-edge")), $"current -> {after}, which has no pinhole-edge");
            await rig.StartDeviceAsync();
        }
        // Afterwards: the device settles on a release that runs, connects and is not on trial any more.
        var settled = await rig.WaitForDeviceAsync(d => d["online"]!.GetValue<bool>() && !File.Exists(Path.Combine(rig.Root, "trial"))
            && d["version"]?.GetValue<string>() == rig.CurrentRelease(), "running the current release, committed", TimeSpan.FromSeconds(120));
        output.WriteLine($"settled on {settled["version"]}: {settled["update"]}");
        var probe = await EndToEnd.ProbeUntilPlayingAsync(rig.RtspUrl, TimeSpan.FromSeconds(60), frames: 10);
        Assert.True(probe.Succeeded && probe.Video!.FramesDecoded >= 10, $"camera not playable after the kills\n{probe}\n{rig.Logs}");
    }
}
