using System.Text.Json.Nodes;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Image;

/// <summary>Runs under <c>./build.sh image-test</c> when <c>./build.sh image arm64</c> has been run.</summary>
public sealed class Arm64ImageFactAttribute : FactAttribute
{
    public Arm64ImageFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("PINHOLE_IMAGE_TEST") != "1")
            Skip = "checks the arm64 disk image: run ./build.sh image arm64, then ./build.sh image-test (sets PINHOLE_IMAGE_TEST=1)";
        else if (!File.Exists(Arm64ImageTests.Image))
            Skip = $"no {Arm64ImageTests.Image}: build it with ./build.sh image arm64";
        else if (Tools.SkipReason("qemu-aarch64-static", "debugfs", "sfdisk", "mdir") is { } missing)
            Skip = missing;
    }
}

/// <summary>
/// The arm64 (Raspberry Pi) image without a Pi: its partition table, its boot files, and its own
/// pinhole-edge run under qemu-aarch64-static with the image's root file system as library root
/// (files taken out of the ext4 partitions with debugfs: no mounts).
/// </summary>
[Trait("Category", "Image")]
public sealed class Arm64ImageTests(ITestOutputHelper output)
{
    public static string Image => Path.Combine(RepoPaths.Root, "out", "image", "pinhole-edge-arm64.img");

    [Arm64ImageFact]
    public async Task Has_an_MBR_with_a_FAT_boot_partition_and_the_Pi_boot_files_and_its_pinhole_edge_runs_under_qemu_user()
    {
        var table = await Command.RunAsync("sfdisk", ["-J", Image]);
        Assert.True(table.Succeeded, table.ToString());
        var pt = JsonNode.Parse(table.StandardOutput)!["partitiontable"]!;
        Assert.Equal("dos", pt["label"]!.ToString());
        var parts = pt["partitions"]!.AsArray();
        Assert.Equal(3, parts.Count);
        Assert.Equal("c", parts[0]!["type"]!.ToString());
        Assert.Equal(2048, parts[0]!["start"]!.GetValue<long>());
        Assert.Equal("83", parts[1]!["type"]!.ToString());
        Assert.Equal("83", parts[2]!["type"]!.ToString());

        var boot = await Command.RunAsync("env", ["MTOOLS_SKIP_CHECK=1", "mdir", "-b", "-/", "-i", Image + "@@1M", "::/"]);
        Assert.True(boot.Succeeded, boot.ToString());
        var files = boot.StandardOutput.Split('\n').Select(l => l.Trim()).ToHashSet();
        foreach (var f in new[] { "config.txt", "cmdline.txt", "vmlinuz", "initrd.img", "start4.elf", "fixup4.dat", "bootcode.bin",
                     "bcm2711-rpi-4-b.dtb", "bcm2837-rpi-3-b.dtb", "pinhole/README.txt", "pinhole/edge.json.example" })
            Assert.Contains("::/" + f, files);
        var cmdline = await Command.RunAsync("env", ["MTOOLS_SKIP_CHECK=1", "mtype", "-i", Image + "@@1M", "::/cmdline.txt"]);
        Assert.Contains("ro ", cmdline.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("root=PARTUUID=", cmdline.StandardOutput, StringComparison.Ordinal);

        // Take the partitions out (sparse) and the files the test needs out of them.
        var dir = E2EDir("image-arm64");
        long Sector(int i, string key) => parts[i]!["" + key]!.GetValue<long>();
        var rootFs = await ExtractAsync(dir, "root.fs", Sector(1, "start"), Sector(1, "size"));
        var dataFs = await ExtractAsync(dir, "data.fs", Sector(2, "start"), Sector(2, "size"));
        var libRoot = Path.Combine(dir, "root");
        Directory.CreateDirectory(Path.Combine(libRoot, "usr", "lib"));
        await DebugfsAsync(rootFs, "rdump /usr/lib/aarch64-linux-gnu " + Path.Combine(libRoot, "usr", "lib"));
        await DebugfsAsync(rootFs, "rdump /etc " + libRoot);
        File.CreateSymbolicLink(Path.Combine(libRoot, "lib"), "usr/lib");
        File.CreateSymbolicLink(Path.Combine(libRoot, "usr", "lib", "ld-linux-aarch64.so.1"), "aarch64-linux-gnu/ld-linux-aarch64.so.1");
        // First boot grows the data partition (MBR here) with these; GrowDataScriptTests run the script.
        var sbin = await Command.RunAsync("debugfs", ["-R", "ls -p /usr/sbin", rootFs], TimeSpan.FromMinutes(2));
        foreach (var tool in new[] { "sfdisk", "resize2fs", "dumpe2fs" })
            Assert.Contains($"/{tool}/", sbin.StandardOutput, StringComparison.Ordinal);
        var libPinhole = await Command.RunAsync("debugfs", ["-R", "ls -p /usr/lib/pinhole", rootFs], TimeSpan.FromMinutes(2));
        Assert.Contains("/pinhole-growdata/", libPinhole.StandardOutput, StringComparison.Ordinal);
        await DebugfsAsync(dataFs, "rdump /opt " + dir);
        var current = Path.Combine(dir, "opt", "current");
        Assert.True(new FileInfo(current).LinkTarget is { } target && target.StartsWith("releases/", StringComparison.Ordinal), "/opt/pinhole/current is not a link to releases/VERSION");
        var edge = Path.Combine(dir, "opt", new FileInfo(current).LinkTarget!, "pinhole-edge");
        Assert.True(File.Exists(edge), $"{edge} missing");

        var version = await Command.RunAsync("qemu-aarch64-static", ["-L", libRoot, edge, "--version"], TimeSpan.FromMinutes(3));
        output.WriteLine(version.ToString());
        Assert.True(version.Succeeded, version.ToString());
        Assert.StartsWith("pinhole-edge ", version.StandardOutput, StringComparison.Ordinal);

        var example = Path.Combine(dir, "edge.json");
        var get = await Command.RunAsync("env", ["MTOOLS_SKIP_CHECK=1", "mcopy", "-n", "-i", Image + "@@1M", "::/pinhole/edge.json.example", example]);
        Assert.True(get.Succeeded, get.ToString());
        var check = await Command.RunAsync("qemu-aarch64-static", ["-L", libRoot, edge, "check-config", example], TimeSpan.FromMinutes(3));
        output.WriteLine(check.ToString());
        Assert.True(check.Succeeded, check.ToString());
        Assert.EndsWith(": ok", check.StandardOutput.Trim(), StringComparison.Ordinal);

        File.WriteAllText(example, """{ "deviceId": "gw1", "relays": "nope" }""");
        var bad = await Command.RunAsync("qemu-aarch64-static", ["-L", libRoot, edge, "check-config", example], TimeSpan.FromMinutes(3));
        output.WriteLine(bad.ToString());
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("relays", bad.StandardOutput, StringComparison.Ordinal);
        Directory.Delete(dir, recursive: true);
    }

    private static string E2EDir(string name) => EndToEnd.EndToEnd.NewWorkDir(name);

    private static async Task<string> ExtractAsync(string dir, string name, long start, long sectors)
    {
        var path = Path.Combine(dir, name);
        var dd = await Command.RunAsync("dd", [$"if={Image}", $"of={path}", "bs=4M", "iflag=skip_bytes,count_bytes", $"skip={start * 512}", $"count={sectors * 512}", "conv=sparse", "status=none"], TimeSpan.FromMinutes(5));
        Assert.True(dd.Succeeded, dd.ToString());
        return path;
    }

    private static async Task DebugfsAsync(string fs, string request)
    {
        var r = await Command.RunAsync("debugfs", ["-R", request, fs], TimeSpan.FromMinutes(5));
        Assert.True(r.Succeeded, r.ToString());
    }
}
