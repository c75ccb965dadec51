using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Telemetry.Outbox;

namespace Pinhole.EdgeHost.Tests.Telemetry;

public sealed class TelemetryOutboxTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("outbox-");
    private static readonly DateTimeOffset T0 = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    public void Dispose() => _dir.Delete(true);

    private static SensorReading Reading(int i) => new(20 + i / 10.0, "°C", T0.AddSeconds(i));

    private string Sub(string name) => Path.Combine(_dir.FullName, name);

    [Fact]
    public async Task Sequence_numbers_count_up_by_one_per_sensor_and_records_come_back_in_order()
    {
        await using var outbox = TelemetryOutbox.Open(Sub("a"));
        for (var i = 1; i <= 5; i++)
        {
            Assert.Equal(i, (await outbox.AppendAsync("temp", Reading(i))).Sequence);
            Assert.Equal(i, (await outbox.AppendAsync("door", new SensorReading(i % 2, "", T0))).Sequence);
        }
        var pending = outbox.GetPending(0, 100);
        Assert.Equal(10, pending.Count);
        Assert.True(pending.Zip(pending.Skip(1)).All(p => p.First.Index < p.Second.Index));
        Assert.Equal([1L, 2, 3, 4, 5], pending.Where(r => r.Sensor == "temp").Select(r => r.Sequence));
        var third = pending.First(r => r.Sensor == "temp" && r.Sequence == 3);
        Assert.Equal(20.3, third.Value);
        Assert.Equal("°C", third.Unit);
        Assert.Equal(T0.AddSeconds(3), third.Timestamp);
        Assert.Equal(5, outbox.LastSequence("door"));
        Assert.Equal(0, outbox.LastSequence("never"));
    }

    [Fact]
    public async Task A_completed_append_is_already_in_the_file_on_disk()
    {
        var dir = Sub("durable");
        await using var outbox = TelemetryOutbox.Open(dir);
        await outbox.AppendAsync("temp", Reading(1));
        await outbox.AppendAsync("temp", Reading(2));
        // What another process (this one after kill -9) would find: copy the files while open.
        var copy = CopyDirectory(dir, Sub("durable-copy"));
        await using var recovered = TelemetryOutbox.Open(copy);
        Assert.Equal([1L, 2], recovered.GetPending(0, 10).Select(r => r.Sequence));
    }

    [Fact]
    public async Task Acknowledged_records_leave_and_sequence_numbers_survive_reopen_even_when_every_segment_was_deleted()
    {
        var dir = Sub("seq");
        var options = new OutboxOptions { MaxBytes = 64 * 1024, SegmentBytes = 4096, CursorSaveInterval = TimeSpan.Zero };
        await using (var outbox = TelemetryOutbox.Open(dir, options))
        {
            for (var i = 1; i <= 300; i++)
            {
                var r = await outbox.AppendAsync("temp", Reading(i));
                outbox.Acknowledge(r.Index);
            }
            Assert.Equal(0, outbox.PendingCount);
        }
        Assert.Single(Directory.GetFiles(dir, "*.seg")); // only the newest segment, holding the checkpoint
        await using (var outbox = TelemetryOutbox.Open(dir, options))
        {
            Assert.Equal(300, outbox.LastSequence("temp"));
            Assert.Empty(outbox.GetPending(0, 10));
            Assert.Equal(301, (await outbox.AppendAsync("temp", Reading(301))).Sequence);
        }
        await using (var outbox = TelemetryOutbox.Open(dir, options))
        {
            Assert.Equal([301L], outbox.GetPending(0, 10).Select(r => r.Sequence));
            Assert.Equal(302, (await outbox.AppendAsync("temp", Reading(302))).Sequence);
        }
    }

    [Fact]
    public async Task Unacknowledged_records_survive_reopen_and_acknowledged_ones_do_not_come_back()
    {
        var dir = Sub("ack");
        var options = new OutboxOptions { CursorSaveInterval = TimeSpan.Zero };
        await using (var outbox = TelemetryOutbox.Open(dir, options))
        {
            var records = new List<OutboxRecord>();
            for (var i = 1; i <= 10; i++) records.Add(await outbox.AppendAsync("temp", Reading(i)));
            foreach (var r in records.Take(6)) outbox.Acknowledge(r.Index);
            Assert.Equal(4, outbox.PendingCount);
            Assert.Equal([7L, 8, 9, 10], outbox.GetPending(0, 100).Select(r => r.Sequence));
            Assert.Equal([9L, 10], outbox.GetPending(records[7].Index, 100).Select(r => r.Sequence));
        }
        await using (var outbox = TelemetryOutbox.Open(dir, options))
        {
            Assert.Equal([7L, 8, 9, 10], outbox.GetPending(0, 100).Select(r => r.Sequence));
            Assert.Equal(10, outbox.LastSequence("temp"));
        }
    }

    [Fact]
    public async Task Killed_mid_write_at_every_byte_of_the_last_record_keeps_every_earlier_record()
    {
        var dir = Sub("crash");
        await using (var outbox = TelemetryOutbox.Open(dir))
            for (var i = 1; i <= 5; i++) await outbox.AppendAsync("temp", Reading(i));
        var segment = Directory.GetFiles(dir, "*.seg").Single();
        var full = File.ReadAllBytes(segment);
        var lastRecordSize = await SizeOfLastRecord(dir);
        Assert.InRange(lastRecordSize, 41, 200); // header + fixed fields + "temp" + "°C": the loop below must run
        var lastStart = full.Length - lastRecordSize;
        var cuts = 0;

        for (var cut = lastStart; cut < full.Length; cut++)
        {
            var copy = CopyDirectory(dir, Sub($"cut{cut}"));
            File.WriteAllBytes(Path.Combine(copy, Path.GetFileName(segment)), full.AsSpan(0, cut).ToArray());
            await using var outbox = TelemetryOutbox.Open(copy);
            var pending = outbox.GetPending(0, 100);
            Assert.Equal([1L, 2, 3, 4], pending.Select(r => r.Sequence));
            Assert.Equal([20.1, 20.2, 20.3, 20.4], pending.Select(r => r.Value));
            Assert.Equal(4, outbox.LastSequence("temp"));
            // The lost reading was never acknowledged to its sensor loop, so its number is reused.
            Assert.Equal(5, (await outbox.AppendAsync("temp", Reading(5))).Sequence);
            cuts++;
        }
        Assert.Equal(lastRecordSize, cuts);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(9)]
    [InlineData(-1)]
    public async Task A_corrupt_last_record_is_detected_by_its_checksum_and_skipped(int byteFromRecordStart)
    {
        var dir = Sub("flip");
        await using (var outbox = TelemetryOutbox.Open(dir))
            for (var i = 1; i <= 3; i++) await outbox.AppendAsync("temp", Reading(i));
        var segment = Directory.GetFiles(dir, "*.seg").Single();
        var bytes = File.ReadAllBytes(segment);
        var start = bytes.Length - await SizeOfLastRecord(dir);
        var at = byteFromRecordStart >= 0 ? start + byteFromRecordStart : bytes.Length - 1;
        bytes[at] ^= 0x10;
        File.WriteAllBytes(segment, bytes);
        await using var reopened = TelemetryOutbox.Open(dir);
        Assert.Equal([1L, 2], reopened.GetPending(0, 100).Select(r => r.Sequence));
    }

    [Fact]
    public async Task A_torn_tail_of_zeros_is_skipped_and_new_records_go_to_a_new_segment()
    {
        var dir = Sub("zeros");
        await using (var outbox = TelemetryOutbox.Open(dir))
            for (var i = 1; i <= 3; i++) await outbox.AppendAsync("temp", Reading(i));
        var segment = Directory.GetFiles(dir, "*.seg").Single();
        using (var f = new FileStream(segment, FileMode.Append)) f.Write(new byte[100]);
        await using (var outbox = TelemetryOutbox.Open(dir))
        {
            Assert.Equal(3, outbox.LastSequence("temp"));
            await outbox.AppendAsync("temp", Reading(4));
        }
        await using (var outbox = TelemetryOutbox.Open(dir))
            Assert.Equal([1L, 2, 3, 4], outbox.GetPending(0, 100).Select(r => r.Sequence));
    }

    [Fact]
    public async Task Bounded_size_drops_the_oldest_first_and_counts_them()
    {
        var options = new OutboxOptions { MaxBytes = 16 * 1024, SegmentBytes = 4096 };
        const int total = 2000;
        await using var outbox = TelemetryOutbox.Open(Sub("bounded"), options);
        for (var i = 1; i <= total; i++) await outbox.AppendAsync("temp", Reading(i));

        var pending = outbox.GetPending(0, int.MaxValue);
        Assert.True(outbox.DroppedCount > 0);
        Assert.Equal(total, outbox.DroppedCount + pending.Count);
        Assert.Equal(pending.Count, outbox.PendingCount);
        // What is kept is the newest, without holes.
        Assert.Equal(Enumerable.Range(total - pending.Count + 1, pending.Count).Select(i => (long)i), pending.Select(r => r.Sequence));
        Assert.True(outbox.SizeBytes <= options.MaxBytes, $"{outbox.SizeBytes} bytes on disk");
        var onDisk = Directory.GetFiles(Sub("bounded"), "*.seg").Sum(f => new FileInfo(f).Length);
        Assert.Equal(outbox.SizeBytes, onDisk);
    }

    [Fact]
    public async Task A_torn_cursor_slot_falls_back_to_the_other_one_so_nothing_is_lost()
    {
        var dir = Sub("cursor");
        var options = new OutboxOptions { CursorSaveInterval = TimeSpan.Zero };
        await using (var outbox = TelemetryOutbox.Open(dir, options))
        {
            for (var i = 1; i <= 4; i++)
            {
                var r = await outbox.AppendAsync("temp", Reading(i));
                if (i <= 2) { outbox.Acknowledge(r.Index); await outbox.AppendAsync("other", Reading(i)); }
            }
        }
        var cursor = Path.Combine(dir, "cursor");
        var bytes = File.ReadAllBytes(cursor);
        Array.Clear(bytes); // both slots gone: start from the beginning, duplicates but no loss
        File.WriteAllBytes(cursor, bytes);
        await using var reopened = TelemetryOutbox.Open(dir, options);
        Assert.Equal([1L, 2, 3, 4], reopened.GetPending(0, 100).Where(r => r.Sensor == "temp").Select(r => r.Sequence));
    }

    [Fact]
    public async Task WaitForPending_completes_when_a_record_arrives()
    {
        await using var outbox = TelemetryOutbox.Open(Sub("wait"));
        var wait = outbox.WaitForPendingAsync(0, CancellationToken.None);
        Assert.False(wait.IsCompleted);
        var r = await outbox.AppendAsync("temp", Reading(1));
        await wait.WaitAsync(TimeSpan.FromSeconds(5));
        var next = outbox.WaitForPendingAsync(r.Index, CancellationToken.None);
        await Task.Delay(50);
        Assert.False(next.IsCompleted);
    }

    private async Task<int> SizeOfLastRecord(string dir)
    {
        // Append one more reading in a scratch copy and measure how much the segment grows.
        var scratch = CopyDirectory(dir, Sub("measure" + Guid.NewGuid().ToString("N")));
        var before = Directory.GetFiles(scratch, "*.seg").ToHashSet();
        await using (var outbox = TelemetryOutbox.Open(scratch))
            await outbox.AppendAsync("temp", Reading(5));
        var newest = Directory.GetFiles(scratch, "*.seg").Except(before).Single();
        var checkpointOnly = await CheckpointSize(scratch);
        return (int)new FileInfo(newest).Length - checkpointOnly;
    }

    private async Task<int> CheckpointSize(string like)
    {
        // A fresh segment with the same sensor set holds only its checkpoint.
        var scratch = CopyDirectory(like, Sub("cp" + Guid.NewGuid().ToString("N")));
        var before = Directory.GetFiles(scratch, "*.seg").ToHashSet();
        await using (TelemetryOutbox.Open(scratch)) { }
        return (int)new FileInfo(Directory.GetFiles(scratch, "*.seg").Except(before).Single()).Length;
    }

    private static string CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from))
            File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        return to;
    }
}
