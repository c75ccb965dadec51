using System.Text;
using Pinhole.Testing;

namespace Pinhole.Integration.Tests.Image;

/// <summary>
/// image/pinhole-firstboot run on this host against folders standing in for the FAT boot partition,
/// the data partition and /etc/pinhole, with the real <c>pinhole-edge check-config</c> (the one built
/// next to these tests). Fast, so it runs in every <c>./build.sh test</c>; the VM test
/// (<see cref="Amd64ImageTests"/>) runs the same script in the image.
/// </summary>
public sealed class FirstBootScriptTests : IDisposable
{
    private const string Valid = """{ "deviceId": "Gw_1", "token": "0123456789abcdef0123", "relays": [ "ws://10.0.2.2:9/uplink" ], "dataDir": "/var/lib/pinhole" }""";
    private const string Broken = "{\n  \"deviceId\": \"gw1\",\n  \"relays\": \"ws://x/uplink\",\n  \"colour\": \"blue\"\n}\n";

    private readonly string _dir = EndToEnd.EndToEnd.NewWorkDir("firstboot");

    private string Boot => Path.Combine(_dir, "boot");
    private string Fat => Path.Combine(Boot, "pinhole");
    private string Data => Path.Combine(_dir, "data");
    private string Etc => Path.Combine(_dir, "etc");
    private string HostnameFile => Path.Combine(_dir, "hostname");

    public FirstBootScriptTests()
    {
        Directory.CreateDirectory(Fat);
        Directory.CreateDirectory(Data);
        Directory.CreateDirectory(Etc);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<CommandResult> RunAsync(string growData = "")
    {
        // check-config through the framework-dependent build next to the tests.
        var edge = Path.Combine(_dir, "pinhole-edge");
        File.WriteAllText(edge, $"#!/bin/sh\nexec dotnet '{EndToEnd.EndToEnd.EdgeDll}' \"$@\"\n");
        Assert.True((await Command.RunAsync("chmod", ["+x", edge])).Succeeded);
        var user = $"{(await Command.RunAsync("id", ["-u"])).StandardOutput.Trim()}:{(await Command.RunAsync("id", ["-g"])).StandardOutput.Trim()}";
        var r = await Command.RunAsync("env", [
            $"PINHOLE_BOOT={Boot}", $"PINHOLE_DATA={Data}", $"PINHOLE_ETC={Etc}", $"PINHOLE_EDGE={edge}",
            $"PINHOLE_OWNER={user}", $"PINHOLE_ROOT_OWNER={user}", $"PINHOLE_HOSTNAME_FILE={HostnameFile}",
            // No partition to grow here (GrowDataScriptTests test that script on its own).
            $"PINHOLE_GROWDATA={growData}",
            "sh", Path.Combine(RepoPaths.Root, "image", "pinhole-firstboot")], TimeSpan.FromSeconds(60));
        Assert.True(r.Succeeded, r.ToString());
        return r;
    }

    private string Log => File.ReadAllText(Path.Combine(Fat, "first-boot.log"));

    [RequiresToolsFact("jq", "dotnet")]
    public async Task A_broken_edge_json_is_left_untouched_and_every_problem_is_one_line_in_the_log_and_on_the_console()
    {
        File.WriteAllText(Path.Combine(Fat, "edge.json"), Broken);

        var r = await RunAsync();

        Assert.Equal(Broken, File.ReadAllText(Path.Combine(Fat, "edge.json")));
        Assert.False(File.Exists(Path.Combine(Etc, "edge.json")));
        var errors = Log.Split('\n').Where(l => l.StartsWith("ERROR pinhole/edge.json: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, errors.Count);
        Assert.Contains(errors, e => e.Contains("token", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("relays", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("colour", StringComparison.Ordinal));
        Assert.Contains("will not start until a valid one is given", Log, StringComparison.Ordinal);
        foreach (var e in errors)
            Assert.Contains("pinhole-firstboot: " + e, r.StandardOutput, StringComparison.Ordinal);
    }

    [RequiresToolsFact("jq", "dotnet")]
    public async Task A_broken_edge_json_keeps_the_configuration_the_device_had()
    {
        File.WriteAllText(Path.Combine(Etc, "edge.json"), Valid);
        File.WriteAllText(Path.Combine(Fat, "edge.json"), Broken);

        await RunAsync();

        Assert.Equal(Valid, File.ReadAllText(Path.Combine(Etc, "edge.json")));
        Assert.Equal(Broken, File.ReadAllText(Path.Combine(Fat, "edge.json")));
        Assert.Contains("pinhole-edge keeps the configuration it had", Log, StringComparison.Ordinal);
        Assert.Equal("pinhole-gw-1", File.ReadAllText(HostnameFile));
    }

    [RequiresToolsFact("jq", "dotnet")]
    public async Task A_valid_edge_json_moves_to_the_device_leaves_the_FAT_partition_and_names_the_host()
    {
        File.WriteAllText(Path.Combine(Fat, "edge.json"), Valid);

        await RunAsync();

        Assert.Equal(Valid, File.ReadAllText(Path.Combine(Etc, "edge.json")));
        Assert.False(File.Exists(Path.Combine(Fat, "edge.json")));
        Assert.False(File.Exists(Path.Combine(Etc, "edge.json.new")));
        Assert.Equal("pinhole-gw-1", File.ReadAllText(HostnameFile));
        Assert.DoesNotContain("ERROR", Log, StringComparison.Ordinal);
        Assert.Contains("pinhole/edge.json: ok", Log, StringComparison.Ordinal);
    }

    [RequiresToolsFact("jq", "dotnet")]
    public async Task A_power_cut_during_the_copy_leaves_the_original_on_FAT_and_the_next_boot_finishes_the_move()
    {
        // Cut after a partial copy, before the rename: the half-written .new and the old config.
        File.WriteAllText(Path.Combine(Etc, "edge.json"), """{ "old": true }""");
        File.WriteAllText(Path.Combine(Etc, "edge.json.new"), Valid[..20]);
        File.WriteAllText(Path.Combine(Fat, "edge.json"), Valid);

        await RunAsync();

        Assert.Equal(Valid, File.ReadAllText(Path.Combine(Etc, "edge.json")));
        Assert.False(File.Exists(Path.Combine(Etc, "edge.json.new")));
        Assert.False(File.Exists(Path.Combine(Fat, "edge.json")));
    }

    [RequiresToolsFact("jq", "dotnet")]
    public async Task A_power_cut_after_the_rename_before_the_delete_applies_the_same_file_again()
    {
        File.WriteAllText(Path.Combine(Etc, "edge.json"), Valid);
        File.WriteAllText(Path.Combine(Fat, "edge.json"), Valid);

        await RunAsync();

        Assert.Equal(Valid, File.ReadAllText(Path.Combine(Etc, "edge.json")));
        Assert.False(File.Exists(Path.Combine(Fat, "edge.json")));
    }

    [RequiresToolsFact("jq", "dotnet")]
    public async Task Wifi_json_with_a_short_passphrase_is_reported_and_left_and_a_good_one_becomes_wpa_supplicant_config()
    {
        File.WriteAllText(Path.Combine(Fat, "wifi.json"), """{ "ssid": "home", "psk": "short" }""");
        await RunAsync();
        Assert.Contains("ERROR pinhole/wifi.json: psk:", Log, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Fat, "wifi.json")));

        File.WriteAllText(Path.Combine(Fat, "wifi.json"), """{ "ssid": "home \"net\"", "psk": "a long passphrase", "country": "GB" }""");
        await RunAsync();
        Assert.False(File.Exists(Path.Combine(Fat, "wifi.json")));
        var conf = File.ReadAllText(Path.Combine(Data, "system", "wpa_supplicant-wlan0.conf"), Encoding.UTF8);
        Assert.Contains("country=GB", conf, StringComparison.Ordinal);
        Assert.Contains("ssid=686f6d6520226e657422", conf, StringComparison.Ordinal); // hex: the name may hold any byte
        Assert.Contains("psk=\"a long passphrase\"", conf, StringComparison.Ordinal);
    }

    [RequiresToolsFact("jq", "dotnet")]
    public async Task What_growing_the_data_partition_reports_goes_to_the_log_and_an_error_there_does_not_stop_the_boot()
    {
        // A stand-in for pinhole-growdata that reports a step and a problem, as the real one does.
        var grow = Path.Combine(_dir, "growdata");
        File.WriteAllText(grow, "#!/bin/sh\necho 'data partition: grown from 625 MiB to 30000 MiB'\necho 'ERROR data partition: resize2fs could not grow the file system: no'\n");
        Assert.True((await Command.RunAsync("chmod", ["+x", grow])).Succeeded);
        File.WriteAllText(Path.Combine(Fat, "edge.json"), Valid);

        var r = await RunAsync(grow);

        Assert.Contains("data partition: grown from 625 MiB to 30000 MiB", Log.Split('\n'));
        Assert.Contains("ERROR data partition: resize2fs could not grow the file system: no", Log.Split('\n'));
        Assert.Contains("pinhole-firstboot: ERROR data partition: resize2fs", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("1 problem(s); the device is up", Log, StringComparison.Ordinal);
        // The rest of first boot went on.
        Assert.Equal(Valid, File.ReadAllText(Path.Combine(Etc, "edge.json")));

        File.Delete(grow);
        await RunAsync(grow);
        Assert.Contains($"ERROR data partition: {grow} is missing; not grown", Log, StringComparison.Ordinal);
    }
}
