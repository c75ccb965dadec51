using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Image;

/// <summary>
/// Runs only under <c>./build.sh image-test</c> (PINHOLE_IMAGE_TEST=1): booting the disk image in a
/// TCG virtual machine takes minutes, far too long for every <c>./build.sh test</c>.
/// </summary>
public sealed class ImageFactAttribute : FactAttribute
{
    public ImageFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("PINHOLE_IMAGE_TEST") != "1")
            Skip = "boots the disk image in a VM (minutes): run ./build.sh image-test (sets PINHOLE_IMAGE_TEST=1)";
        else if (!File.Exists(ImageVm.QemuSystem))
            Skip = $"needs {ImageVm.QemuSystem} (Debian package qemu-system-x86; ./build.sh image-test installs it)";
        else if (!File.Exists(ImageVm.OvmfCode))
            Skip = $"needs {ImageVm.OvmfCode} (Debian package ovmf; ./build.sh image-test installs it)";
    }
}

/// <summary>
/// A copy of <c>out/image/pinhole-edge-amd64.img</c> booted under <c>qemu-system-x86_64</c> (TCG: no
/// KVM here), UEFI (OVMF), with user-mode networking: the guest reaches this host's loopback at
/// 10.0.2.2, and the edge's local page (8081 in the guest) is forwarded to a loopback port here. The
/// serial console is the process's output; the QEMU monitor is a Unix socket (for a hard reset).
/// Files on the FAT boot partition (the image's first partition, at 1 MiB) are read and written
/// with mtools while the VM is off.
/// </summary>
internal sealed class ImageVm : IAsyncDisposable
{
    public const string QemuSystem = "/usr/bin/qemu-system-x86_64";
    public const string OvmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    public const string OvmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd";
    private const string BootPartition = "@@1M";

    private readonly ITestOutputHelper _output;
    private readonly object _console = new();

    private ImageVm(ITestOutputHelper output, string dir, string disk)
    {
        _output = output;
        Dir = dir;
        Disk = disk;
        PagePort = FreePort.Get();
    }

    public static string BaseImage => Path.Combine(RepoPaths.Root, "out", "image", "pinhole-edge-amd64.img");

    public string Dir { get; }
    public string Disk { get; }
    public int PagePort { get; }

    /// <summary>test-artifacts/image-console-NAME.log: the serial console of the last boot of this test's VM.</summary>
    public string ConsoleLog { get; private init; } = "";
    public PeerProcess? Qemu { get; private set; }
    public DateTime PoweredOnAt { get; private set; }
    private string MonitorSocket => Path.Combine(Dir, "monitor.sock");

    /// <summary>A sparse copy of the built image in a fresh folder.</summary>
    public static async Task<ImageVm> CreateAsync(ITestOutputHelper output, string name)
    {
        Assert.True(File.Exists(BaseImage), $"{BaseImage} does not exist: build it with ./build.sh image amd64");
        var dir = EndToEnd.EndToEnd.NewWorkDir(name);
        var disk = Path.Combine(dir, "disk.img");
        var copy = await Command.RunAsync("cp", ["--sparse=always", BaseImage, disk], TimeSpan.FromMinutes(3));
        Assert.True(copy.Succeeded, copy.ToString());
        File.Copy(OvmfVars, Path.Combine(dir, "vars.fd"));
        var console = RepoPaths.ArtifactPath($"image-console-{name}.log");
        File.Delete(console);
        return new ImageVm(output, dir, disk) { ConsoleLog = console };
    }

    /// <summary>Writes <paramref name="content"/> to pinhole/<paramref name="name"/> on the boot partition (VM off).</summary>
    public async Task WriteBootFileAsync(string name, byte[] content)
    {
        var local = Path.Combine(Dir, "put-" + name);
        await File.WriteAllBytesAsync(local, content);
        var r = await Mtools("mcopy", "-o", "-i", Disk + BootPartition, local, "::/pinhole/" + name);
        Assert.True(r.Succeeded, r.ToString());
    }

    /// <summary>The bytes of pinhole/<paramref name="name"/> on the boot partition, or null when it is not there (VM off).</summary>
    public async Task<byte[]?> ReadBootFileAsync(string name)
    {
        var list = await Mtools("mdir", "-b", "-i", Disk + BootPartition, "::/pinhole");
        Assert.True(list.Succeeded, list.ToString());
        if (!list.StandardOutput.Split('\n').Any(l => l.TrimEnd().EndsWith("/pinhole/" + name, StringComparison.Ordinal)))
            return null;
        var local = Path.Combine(Dir, "got-" + name);
        File.Delete(local);
        var r = await Mtools("mcopy", "-n", "-i", Disk + BootPartition, "::/pinhole/" + name, local);
        Assert.True(r.Succeeded, r.ToString());
        return await File.ReadAllBytesAsync(local);
    }

    /// <summary>
    /// Makes the disk <paramref name="extraBytes"/> larger (sparse), as when the image is written to a
    /// card larger than itself (VM off). Returns the new size in bytes.
    /// </summary>
    public long GrowDisk(long extraBytes)
    {
        using var disk = new FileStream(Disk, FileMode.Open, FileAccess.Write);
        disk.SetLength(disk.Length + extraBytes);
        return disk.Length;
    }

    /// <summary>The data partition (the last one) as <c>sfdisk -J</c> sees it: start and size in 512-byte sectors (VM off).</summary>
    public async Task<(long Start, long Sectors)> DataPartitionAsync()
    {
        var r = await Command.RunAsync(Tools.Require("sfdisk"), ["-J", Disk], TimeSpan.FromSeconds(30));
        Assert.True(r.Succeeded, r.ToString());
        var last = System.Text.Json.Nodes.JsonNode.Parse(r.StandardOutput)!["partitiontable"]!["partitions"]!.AsArray()[^1]!;
        return (last["start"]!.GetValue<long>(), last["size"]!.GetValue<long>());
    }

    /// <summary>The size in bytes of the ext4 file system at <paramref name="startSector"/> of the disk, from its superblock (VM off).</summary>
    public async Task<long> FileSystemBytesAsync(long startSector)
    {
        // e2fsprogs opens "FILE?offset=BYTES": no loop device needed.
        var r = await Command.RunAsync(Tools.Require("dumpe2fs"), ["-h", $"{Disk}?offset={startSector * 512}"], TimeSpan.FromSeconds(60));
        Assert.True(r.Succeeded, r.ToString());
        long Field(string name) => long.Parse(r.StandardOutput.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        return Field("Block count") * Field("Block size");
    }

    private static Task<CommandResult> Mtools(string tool, params string[] args) =>
        Command.RunAsync("env", ["MTOOLS_SKIP_CHECK=1", tool, .. args], TimeSpan.FromSeconds(60));

    /// <summary>Powers the VM on; the console lines go to the test output.</summary>
    public async Task PowerOnAsync()
    {
        PoweredOnAt = DateTime.UtcNow;
        var started = DateTime.UtcNow;
        Qemu = await PeerProcess.StartAsync(new PeerStartInfo(QemuSystem,
            "-machine", "q35", "-accel", "tcg,thread=multi", "-smp", "2", "-m", "1024",
            "-drive", $"if=pflash,format=raw,readonly=on,file={OvmfCode}",
            "-drive", $"if=pflash,format=raw,file={Path.Combine(Dir, "vars.fd")}",
            "-drive", $"file={Disk},format=raw,if=virtio,cache=unsafe",
            "-netdev", $"user,id=n0,hostfwd=tcp:127.0.0.1:{PagePort}-:8081",
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-display", "none", "-serial", "stdio",
            "-monitor", $"unix:{MonitorSocket},server=on,wait=off")
        {
            Name = "vm",
            WorkingDirectory = Dir,
            OutputLines = 4000,
            OnOutputLine = line =>
            {
                var text = $"{(DateTime.UtcNow - started).TotalSeconds,7:0.0}s vm| {StripAnsi(line)}";
                // Also to a file that can be followed while the VM boots (and read after a failure).
                lock (_console) File.AppendAllText(ConsoleLog, text + "\n");
                try { _output.WriteLine(text); }
                catch (InvalidOperationException) { /* the test already finished */ }
            },
        });
    }

    /// <summary>Waits for a console line matching <paramref name="pattern"/>.</summary>
    public Task<Match> WaitForConsoleAsync(Regex pattern, TimeSpan timeout) => Qemu!.WaitForLineAsync(pattern, timeout);

    /// <summary>Sends one command to the QEMU monitor (system_reset: the reset button, quit: power off).</summary>
    public async Task MonitorAsync(string command)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(MonitorSocket));
        await socket.SendAsync(Encoding.ASCII.GetBytes(command + "\n"));
        // The monitor prints a banner and echoes the command; give it a moment to act before closing.
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try { while (await socket.ReceiveAsync(buffer, cts.Token) > 0) { } }
        catch (OperationCanceledException) { }
        catch (SocketException) { /* quit closes the socket */ }
    }

    /// <summary>Powers the VM off (the guest has synced what it wrote) and waits for QEMU to exit.</summary>
    public async Task PowerOffAsync()
    {
        if (Qemu is null) return;
        await MonitorAsync("quit");
        await Qemu.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await Qemu.DisposeAsync();
        Qemu = null;
    }

    private static string StripAnsi(string line) => Regex.Replace(line, @"\x1b\[[0-9;?]*[A-Za-z]", "");

    public async ValueTask DisposeAsync()
    {
        if (Qemu is not null) await Qemu.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
