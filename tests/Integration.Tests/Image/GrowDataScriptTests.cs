using System.Text.Json.Nodes;
using Pinhole.Testing;

namespace Pinhole.Integration.Tests.Image;

/// <summary>
/// image/pinhole-growdata run on this host against files standing in for the card (a disk image laid
/// out like the real one: boot, root, data, with MBR as on the Pi or GPT as on amd64) and for the data
/// partition's ext4 file system. The card is made larger than the image, as when a 2 GiB image is
/// written to a bigger SD card. Fast, so it runs in every <c>./build.sh test</c>; the VM test
/// (<see cref="Amd64ImageTests"/>) grows a real data partition while it is mounted.
/// </summary>
public sealed class GrowDataScriptTests : IDisposable
{
    private const long MiB = 1024 * 1024;
    private const int DataMiB = 40;

    private readonly string _dir = EndToEnd.EndToEnd.NewWorkDir("growdata");

    private string Disk => Path.Combine(_dir, "disk.img");
    private string DataFs => Path.Combine(_dir, "data.fs");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A 100 MiB image (boot 20 MiB at 1 MiB, root 30 MiB, data 40 MiB) written to a card of <paramref name="cardMiB"/>.</summary>
    private async Task MakeCardAsync(string label, long cardMiB)
    {
        await using (var f = File.Create(Disk)) f.SetLength(100 * MiB);
        var layout = label == "dos"
            ? $"label: dos\nlabel-id: 0x50494e48\nstart=1MiB, size=20MiB, type=c\nsize=30MiB, type=83\nsize={DataMiB}MiB, type=83\n"
            : $"label: gpt\nstart=1MiB, size=20MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nsize=30MiB\nsize={DataMiB}MiB\n";
        var script = Path.Combine(_dir, "layout.sfdisk");
        File.WriteAllText(script, layout);
        var sfdisk = await Command.RunAsync("sh", ["-c", $"sfdisk -q '{Disk}' < '{script}'"], TimeSpan.FromSeconds(30));
        Assert.True(sfdisk.Succeeded, sfdisk.ToString());
        var mkfs = await Command.RunAsync(Tools.Require("mkfs.ext4"), ["-q", "-F", "-L", "pinhole-data", DataFs, $"{DataMiB}M"], TimeSpan.FromSeconds(30));
        Assert.True(mkfs.Succeeded, mkfs.ToString());
        // Written to a larger card: the image's bytes, then the rest of the card (sparse here).
        await using (var f = File.OpenWrite(Disk)) f.SetLength(cardMiB * MiB);
    }

    private Task<CommandResult> GrowAsync(string script = "pinhole-growdata", int partition = 3) =>
        Command.RunAsync("env", [
            $"PINHOLE_DATA_DISK={Disk}", $"PINHOLE_DATA_PARTNO={partition}", $"PINHOLE_DATA_DEV={DataFs}",
            "sh", Path.Combine(RepoPaths.Root, "image", script)], TimeSpan.FromSeconds(60));

    private async Task<JsonNode> TableAsync()
    {
        var r = await Command.RunAsync(Tools.Require("sfdisk"), ["-J", Disk], TimeSpan.FromSeconds(30));
        Assert.True(r.Succeeded, r.ToString());
        return JsonNode.Parse(r.StandardOutput)!["partitiontable"]!;
    }

    private static (long Start, long Size) Partition(JsonNode table, int index) =>
        (table["partitions"]![index]!["start"]!.GetValue<long>(), table["partitions"]![index]!["size"]!.GetValue<long>());

    /// <summary>The file system's size from its superblock (block count times block size), in bytes.</summary>
    private async Task<long> FileSystemBytesAsync()
    {
        var r = await Command.RunAsync(Tools.Require("dumpe2fs"), ["-h", DataFs], TimeSpan.FromSeconds(30));
        Assert.True(r.Succeeded, r.ToString());
        long Field(string name) => long.Parse(r.StandardOutput.Split('\n').Single(l => l.StartsWith(name + ":", StringComparison.Ordinal))[(name.Length + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        return Field("Block count") * Field("Block size");
    }

    [RequiresToolsTheory("sfdisk", "jq", "mkfs.ext4", "resize2fs", "dumpe2fs", "e2fsck")]
    [InlineData("dos")]
    [InlineData("gpt")]
    public async Task The_data_partition_and_its_file_system_grow_to_the_end_of_a_larger_card_once(string label)
    {
        await MakeCardAsync(label, cardMiB: 1024);
        var before = await TableAsync();

        var r = await GrowAsync();

        Assert.True(r.Succeeded, r.ToString());
        Assert.DoesNotContain("ERROR", r.StandardOutput, StringComparison.Ordinal);
        var after = await TableAsync();
        Assert.Equal(label, after["label"]!.ToString());
        // Boot and root are untouched; data keeps its start and now ends within 1 MiB of the card's end.
        Assert.Equal(Partition(before, 0), Partition(after, 0));
        Assert.Equal(Partition(before, 1), Partition(after, 1));
        var (start, size) = Partition(after, 2);
        Assert.Equal(Partition(before, 2).Start, start);
        var endBytes = (start + size) * 512;
        Assert.InRange(endBytes, 1023 * MiB, 1024 * MiB);
        Assert.Contains($"data partition: grown from {DataMiB} MiB to {size / 2048} MiB", r.StandardOutput, StringComparison.Ordinal);
        // The file system fills the partition and is consistent.
        var fs = await FileSystemBytesAsync();
        Assert.InRange(fs, size * 512 - MiB, size * 512);
        Assert.Contains($"file system grown from {DataMiB} MiB to {fs / MiB} MiB", r.StandardOutput, StringComparison.Ordinal);
        var fsck = await Command.RunAsync(Tools.Require("e2fsck"), ["-f", "-n", DataFs], TimeSpan.FromSeconds(60));
        Assert.True(fsck.Succeeded, fsck.ToString());
        var verify = await Command.RunAsync(Tools.Require("sfdisk"), ["-V", Disk], TimeSpan.FromSeconds(30));
        Assert.True(verify.Succeeded, verify.ToString());
        if (label == "gpt")
            Assert.Equal(1024 * MiB / 512 - 34, after["lastlba"]!.GetValue<long>()); // the backup GPT moved to the card's end

        // The next boot finds nothing to do and changes nothing.
        var again = await GrowAsync();
        Assert.True(again.Succeeded, again.ToString());
        Assert.Contains($"data partition: {size / 2048} MiB, file system {fs / MiB} MiB: fills the disk (1024 MiB)", again.StandardOutput, StringComparison.Ordinal);
        Assert.DoesNotContain("grown", again.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(after.ToJsonString(), (await TableAsync()).ToJsonString());
        Assert.Equal(fs, await FileSystemBytesAsync());
    }

    [RequiresToolsFact("sfdisk", "jq", "mkfs.ext4", "resize2fs", "dumpe2fs")]
    public async Task A_power_cut_after_the_partition_grew_leaves_the_file_system_to_the_next_boot()
    {
        await MakeCardAsync("dos", cardMiB: 512);
        // The cut: the partition table already says the rest of the card, the file system is as built.
        var grow = await Command.RunAsync("sh", ["-c", $"echo ', +' | sfdisk -q -N 3 '{Disk}'"], TimeSpan.FromSeconds(30));
        Assert.True(grow.Succeeded, grow.ToString());
        var table = await TableAsync();

        var r = await GrowAsync();

        Assert.True(r.Succeeded, r.ToString());
        Assert.DoesNotContain("data partition: grown", r.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"file system grown from {DataMiB} MiB to", r.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(table.ToJsonString(), (await TableAsync()).ToJsonString());
        Assert.InRange(await FileSystemBytesAsync(), Partition(table, 2).Size * 512 - MiB, Partition(table, 2).Size * 512);
    }

    [RequiresToolsFact("sfdisk", "jq", "mkfs.ext4", "resize2fs", "dumpe2fs")]
    public async Task A_card_the_size_of_the_image_is_left_as_it_is()
    {
        await MakeCardAsync("gpt", cardMiB: 100);
        var table = await TableAsync();

        var r = await GrowAsync();

        Assert.True(r.Succeeded, r.ToString());
        Assert.Contains($"data partition: {DataMiB} MiB, file system {DataMiB} MiB: fills the disk (100 MiB)", r.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(table.ToJsonString(), (await TableAsync()).ToJsonString());
        Assert.Equal(DataMiB * MiB, await FileSystemBytesAsync());
    }

    [RequiresToolsFact("sfdisk", "jq", "mkfs.ext4", "resize2fs", "dumpe2fs")]
    public async Task A_partition_that_is_not_the_last_or_a_disk_without_a_table_is_reported_and_not_touched()
    {
        await MakeCardAsync("dos", cardMiB: 512);
        var table = await TableAsync();

        var notLast = await GrowAsync(partition: 2);
        Assert.True(notLast.Succeeded, notLast.ToString());
        Assert.Contains("ERROR data partition: partition 3 comes after the data partition (2)", notLast.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(table.ToJsonString(), (await TableAsync()).ToJsonString());
        Assert.Equal(DataMiB * MiB, await FileSystemBytesAsync());

        await File.WriteAllBytesAsync(Disk, new byte[4 * MiB]);
        var blank = await GrowAsync();
        Assert.True(blank.Succeeded, blank.ToString());
        Assert.Contains("ERROR data partition: cannot read the partition table", blank.StandardOutput, StringComparison.Ordinal);
        Assert.Equal(DataMiB * MiB, await FileSystemBytesAsync());
    }
}
