using Pinhole.Drivers.Gpio;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Telemetry;
using System.Diagnostics.Metrics;

namespace Pinhole.EdgeHost.Tests.Telemetry;

public sealed class TelemetryPipelineFactoryTests : IAsyncLifetime
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("factory-");
    private readonly FakeConnector _broker = new();
    private readonly Meter _meter = new("test");
    private TelemetryPipelineFactory _factory = null!;

    public Task InitializeAsync()
    {
        _factory = new TelemetryPipelineFactory(new ListLogger(), _meter, new TelemetryCounters(_meter), TimeProvider.System, new SensorBuses { OpenGpioChip = _ => new System.Device.Gpio.GpioController(new InMemoryGpioDriver()) }, _broker);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _factory.DisposeAsync();
        _dir.Delete(true);
    }

    private EdgeConfig Config(string unit = "°C") => new()
    {
        DeviceId = "gw1",
        DataDir = _dir.FullName,
        Sensors =
        [
            new SensorConfig { Name = "cpu_temp", Kind = "file", Path = "/sys/class/thermal/thermal_zone0/temp", Scale = 0.001, Unit = unit, Interval = "5s" },
            new SensorConfig { Name = "door_contact", Kind = "gpio", Chip = "/dev/gpiochip0", Line = 17, Edge = "both", Debounce = "20ms" },
        ],
        Mqtt = new MqttConfig { Url = "wss://broker.example.com:8884/mqtt", Username = "gw1", Password = "pw" },
    };

    [Fact]
    public void One_pipeline_per_sensor_and_one_mqtt_session_and_planning_opens_nothing()
    {
        var specs = _factory.CreatePipelines(Config()).ToList();
        Assert.Equal(["sensor/cpu_temp", "sensor/door_contact", "mqtt"], specs.Select(s => s.Name));
        Assert.False(Directory.Exists(Path.Combine(_dir.FullName, "telemetry-outbox")));
        Assert.Empty(_factory.CreatePipelines(new EdgeConfig { DeviceId = "gw1", DataDir = _dir.FullName }));
    }

    [Fact]
    public void Fingerprints_change_only_for_what_a_pipeline_reads()
    {
        var before = _factory.CreatePipelines(Config()).ToDictionary(s => s.Name, s => s.Fingerprint);
        var same = _factory.CreatePipelines(Config()).ToDictionary(s => s.Name, s => s.Fingerprint);
        Assert.Equal(before, same);
        var after = _factory.CreatePipelines(Config(unit: "K")).ToDictionary(s => s.Name, s => s.Fingerprint);
        Assert.NotEqual(before["sensor/cpu_temp"], after["sensor/cpu_temp"]);
        Assert.NotEqual(before["mqtt"], after["mqtt"]); // the discovery config carries the unit
        Assert.Equal(before["sensor/door_contact"], after["sensor/door_contact"]);
    }

    [Fact]
    public async Task Every_instance_shares_one_outbox_so_a_restarted_pipeline_keeps_the_queue_and_the_sequence()
    {
        var spec = _factory.CreatePipelines(Config()).Single(s => s.Name == "sensor/door_contact");
        var first = spec.Create();
        var second = spec.Create();
        Assert.NotSame(first, second);
        var outbox = _factory.Outbox(_dir.FullName);
        Assert.Same(outbox, _factory.Outbox(_dir.FullName + "/"));

        using var stop = new CancellationTokenSource();
        var run = first.RunAsync(new RecordingContext(), stop.Token);
        await Eventually.True(() => outbox.LastSequence("door_contact") == 1, "initial level");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);

        using var stop2 = new CancellationTokenSource();
        var run2 = second.RunAsync(new RecordingContext(), stop2.Token);
        await Eventually.True(() => outbox.LastSequence("door_contact") == 2, "restarted instance continues the sequence");
        await stop2.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run2);
        Assert.Equal(2, outbox.PendingCount);
    }
}
