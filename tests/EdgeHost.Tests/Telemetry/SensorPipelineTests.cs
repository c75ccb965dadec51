using Microsoft.Extensions.Logging;
using System.Device.Gpio;
using Pinhole.Drivers.Gpio;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.Testing.Time;
using System.Diagnostics.Metrics;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Telemetry;

public sealed class SensorPipelineTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("pipelines-");
    private readonly ListLogger _log = new();
    private readonly MeterProbe _probe = new(new Meter("test"));

    public void Dispose() => _dir.Delete(true);

    private EdgeConfig Config(params SensorConfig[] sensors) => new()
    {
        DeviceId = "gw1",
        DataDir = Path.Combine(_dir.FullName, "data"),
        Sensors = [.. sensors],
        Mqtt = new MqttConfig { Url = "mqtt://127.0.0.1:1883" },
    };

    [Fact]
    public async Task Gpio_edge_events_become_readings_of_1_and_0_after_the_initial_level()
    {
        // The debounce runs on a manual clock, so "shorter than the period" is exact.
        var chipTime = new ManualTimeProvider();
        var chip = new InMemoryGpioDriver(32);
        chip.SetInputLevel(17, PinValue.High);
        string? openedChip = null;
        var config = Config(new SensorConfig { Name = "door_contact", Kind = "gpio", Chip = "/dev/gpiochip0", Line = 17, Edge = "both", Debounce = "20ms" });
        await using var telemetry = TelemetryPipelines.Create(config, _log, _probe.Meter, chipTime,
            new SensorBuses { OpenGpioChip = c => { openedChip = c; return new GpioController(chip); } }, connector: new FakeConnector());
        var pipeline = telemetry.Pipelines.Single(p => p.Name == "sensor/door_contact");
        Assert.Contains(telemetry.Pipelines, p => p.Name == "mqtt");
        using var stop = new CancellationTokenSource();
        var context = new RecordingContext();
        var run = pipeline.RunAsync(context, stop.Token);

        await Eventually.True(() => telemetry.Outbox.LastSequence("door_contact") == 1, "initial level stored");
        chip.SetInputLevel(17, PinValue.Low);
        chipTime.Advance(TimeSpan.FromMilliseconds(20));
        await Eventually.True(() => telemetry.Outbox.LastSequence("door_contact") == 2, "falling edge stored");
        chip.SetInputLevel(17, PinValue.High);
        chipTime.Advance(TimeSpan.FromMilliseconds(20));
        await Eventually.True(() => telemetry.Outbox.LastSequence("door_contact") == 3, "rising edge stored");
        // A bounce shorter than the debounce period is no reading.
        chip.SetInputLevel(17, PinValue.Low);
        chipTime.Advance(TimeSpan.FromMilliseconds(19));
        chip.SetInputLevel(17, PinValue.High);
        chipTime.Advance(TimeSpan.FromMilliseconds(50));
        await Task.Delay(100);
        Assert.Equal(3, telemetry.Outbox.LastSequence("door_contact"));
        chip.SetInputLevel(17, PinValue.Low);
        chipTime.Advance(TimeSpan.FromMilliseconds(20));
        await Eventually.True(() => telemetry.Outbox.LastSequence("door_contact") == 4, "second falling edge stored");

        var readings = telemetry.Outbox.GetPending(0, 100);
        Assert.Equal([1.0, 0, 1, 0], readings.Select(r => r.Value));
        Assert.Equal([1L, 2, 3, 4], readings.Select(r => r.Sequence));
        Assert.Equal("/dev/gpiochip0", openedChip);
        Assert.Equal(Timeout.InfiniteTimeSpan, pipeline.StallTimeout);
        await Eventually.True(() => context.Heartbeats >= 4, "a heartbeat per stored reading");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.False(chip.IsLineOpen(17)); // the pipeline released its chip
    }

    [Fact]
    public async Task A_missing_gpio_chip_is_a_fault_not_a_crash()
    {
        var config = Config(new SensorConfig { Name = "door", Kind = "gpio", Chip = "/dev/gpiochip9", Line = 1 });
        await using var telemetry = TelemetryPipelines.Create(config, _log, _probe.Meter, TimeProvider.System,
            SensorBuses.System, connector: null);
        using var stop = new CancellationTokenSource();
        var run = telemetry.Pipelines.Single().RunAsync(new RecordingContext(), stop.Token);
        await Eventually.True(() => _log.Entries.Any(e => e.Level == LogLevel.Warning && e.Message.Contains("/dev/gpiochip9", StringComparison.Ordinal)), "fault logged");
        Assert.False(run.IsCompleted);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task A_file_sensor_fault_is_reported_once_per_state_change_and_recovery_is_reported()
    {
        var file = Path.Combine(_dir.FullName, "thermal_zone0", "temp");
        var config = Config(new SensorConfig { Name = "cpu_temp", Kind = "file", Path = file, Scale = 0.001, Unit = "°C", Interval = "20ms" });
        await using var telemetry = TelemetryPipelines.Create(config, _log, _probe.Meter, TimeProvider.System, new SensorBuses { OpenGpioChip = _ => throw new InvalidOperationException() }, connector: null);
        var pipeline = telemetry.Pipelines.Single();
        Assert.Equal("sensor/cpu_temp", pipeline.Name);
        var context = new RecordingContext();
        using var stop = new CancellationTokenSource();
        var run = pipeline.RunAsync(context, stop.Token);

        int Warnings() => _log.Entries.Count(e => e.Level == LogLevel.Warning && e.Message.Contains("cpu_temp", StringComparison.Ordinal));
        int Recoveries() => _log.Entries.Count(e => e.Message.Contains("reads again", StringComparison.Ordinal));

        // Missing for many polls: one report.
        await Eventually.True(() => context.Heartbeats >= 10, "10 polls");
        Assert.Equal(1, Warnings());
        Assert.Contains("Missing", _log.Entries.First(e => e.Level == LogLevel.Warning).Message, StringComparison.Ordinal);
        Assert.Equal(0, telemetry.Outbox.LastSequence("cpu_temp"));
        Assert.StartsWith("fault: Missing", context.Statuses.Last(), StringComparison.Ordinal);

        // Appears: one recovery, readings flow.
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        WriteAtomically(file, "45678\n");
        await Eventually.True(() => telemetry.Outbox.LastSequence("cpu_temp") >= 5, "5 readings");
        Assert.Equal(1, Recoveries());
        Assert.Equal(45.678, telemetry.Outbox.GetPending(0, 1)[0].Value, 9);
        Assert.Equal("°C", telemetry.Outbox.GetPending(0, 1)[0].Unit);

        // Garbage: a different fault, reported once more.
        WriteAtomically(file, "garbage\n");
        var before = context.Heartbeats;
        await Eventually.True(() => context.Heartbeats >= before + 10, "10 more polls");
        Assert.Equal(2, Warnings());
        Assert.Equal(1, Recoveries());
        Assert.Contains("pinhole_sensor_faults_total{sensor=\"cpu_temp\"} 2", _probe.Render(), StringComparison.Ordinal);
        Assert.Contains("pinhole_sensor_ok{sensor=\"cpu_temp\"} 0", _probe.Render(), StringComparison.Ordinal);

        // Back again: a second recovery; sequence numbers kept counting without a hole.
        WriteAtomically(file, "40000\n");
        var seqBefore = telemetry.Outbox.LastSequence("cpu_temp");
        await Eventually.True(() => telemetry.Outbox.LastSequence("cpu_temp") >= seqBefore + 2, "readings again");
        Assert.Equal(2, Recoveries());
        var seqs = telemetry.Outbox.GetPending(0, 10_000).Select(r => r.Sequence).ToList();
        Assert.Equal(Enumerable.Range(1, seqs.Count).Select(i => (long)i), seqs);

        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public void Config_problems_are_listed_with_their_json_path()
    {
        var config = Config(
            new SensorConfig { Name = "a/b", Kind = "file", Path = "/x", Interval = "5 parsecs" },
            new SensorConfig { Name = "door", Kind = "gpio", Line = -1, Edge = "sideways", Debounce = "soon" },
            new SensorConfig { Name = "door", Kind = "analog" });
        config.Mqtt!.Url = "http://broker";
        var problems = TelemetryPipelines.Validate(config);
        Assert.Contains(problems, p => p.StartsWith("sensors[0].name:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[0].interval:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[1].chip:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[1].line:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[1].edge:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[1].debounce:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[2].name: \"door\" is used twice", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[2].kind:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("mqtt.url:", StringComparison.Ordinal));
        Assert.Empty(TelemetryPipelines.Validate(Config(new SensorConfig { Name = "t", Kind = "file", Path = "/t", Interval = "500ms" })));
    }

    // sysfs attributes change atomically; File.WriteAllText would let the poller see an empty file.
    private static void WriteAtomically(string path, string content)
    {
        File.WriteAllText(path + ".tmp", content);
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
