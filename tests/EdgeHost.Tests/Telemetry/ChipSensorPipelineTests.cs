using System.Text.Json;
using Microsoft.Extensions.Logging;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Telemetry;
using Pinhole.Testing.Sensors;
using System.Diagnostics.Metrics;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Telemetry;

/// <summary>Chip sensors end to end: config, the binding on a fake bus, the outbox, the topics and Home Assistant discovery.</summary>
public sealed class ChipSensorPipelineTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("chips-");
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
    public async Task Each_quantity_of_a_chip_is_its_own_reading_topic_and_discovery_config_with_its_unit()
    {
        var opened = new List<(int Bus, int Address)>();
        var buses = new SensorBuses
        {
            OpenI2c = (bus, address) =>
            {
                lock (opened) opened.Add((bus, address));
                return address switch
                {
                    0x76 => new FakeBmx280(humidity: true, bus, address),
                    0x48 => new FakeAds1115(bus, address) { Inputs = { [0] = 8000, [1] = 16000, [2] = 4000, [3] = 0 } },
                    _ => throw new FileNotFoundException($"nothing at 0x{address:x2}"),
                };
            },
        };
        var broker = new FakeConnector();
        var config = Config(
            new SensorConfig { Name = "room", Kind = "bme280", Bus = 1, Address = "0x76", Interval = "100ms" },
            new SensorConfig { Name = "adc", Kind = "ads1115", Bus = 1, Address = "0x48", Interval = "100ms" });
        Assert.Empty(TelemetryPipelines.Validate(config));
        await using var telemetry = TelemetryPipelines.Create(config, _log, _probe.Meter, TimeProvider.System, buses, broker);
        Assert.Equal(["sensor/room", "sensor/adc", "mqtt"], telemetry.Pipelines.Select(p => p.Name));

        using var stop = new CancellationTokenSource();
        var runs = telemetry.Pipelines.Select(p => p.RunAsync(new RecordingContext(), stop.Token)).ToList();
        List<(string Topic, string Payload, bool Retain)> Published(string reading) =>
            broker.Published.Where(p => p.Topic == $"pinhole/gw1/sensors/{reading}").ToList();
        await Eventually.True(() => Published("room_pressure").Count >= 2 && Published("adc_a3").Count >= 2, "two polls of each chip published");

        using (var t = JsonDocument.Parse(Published("room_temperature")[0].Payload))
        {
            Assert.Equal(FakeBmx280.ExpectedTemperature, t.RootElement.GetProperty("value").GetDouble(), 9);
            Assert.Equal("°C", t.RootElement.GetProperty("unit").GetString());
            Assert.Equal(1, t.RootElement.GetProperty("seq").GetInt64());
        }
        using (var h = JsonDocument.Parse(Published("room_humidity")[0].Payload))
        {
            Assert.Equal(FakeBmx280.ExpectedHumidity, h.RootElement.GetProperty("value").GetDouble(), 9);
            Assert.Equal("%", h.RootElement.GetProperty("unit").GetString());
        }
        using (var p = JsonDocument.Parse(Published("room_pressure")[1].Payload))
        {
            Assert.Equal(FakeBmx280.ExpectedPressure, p.RootElement.GetProperty("value").GetDouble(), 9);
            Assert.Equal("hPa", p.RootElement.GetProperty("unit").GetString());
            Assert.Equal(2, p.RootElement.GetProperty("seq").GetInt64()); // each reading counts its own sequence
        }
        double Volts(string reading) => JsonDocument.Parse(Published(reading)[0].Payload).RootElement.GetProperty("value").GetDouble();
        Assert.Equal([1.0, 2.0, 0.5, 0.0], new[] { "adc_a0", "adc_a1", "adc_a2", "adc_a3" }.Select(Volts));
        Assert.Equal("V", JsonDocument.Parse(Published("adc_a1")[0].Payload).RootElement.GetProperty("unit").GetString());
        Assert.DoesNotContain(broker.Published, p => p.Topic == "pinhole/gw1/sensors/room" || p.Topic == "pinhole/gw1/sensors/adc");

        // Home Assistant: one retained config per reading, with the device class that fits its quantity.
        var discovery = broker.Published.Where(p => p.Topic.StartsWith("homeassistant/sensor/", StringComparison.Ordinal)).ToList();
        Assert.Equal(
            ["room_temperature", "room_humidity", "room_pressure", "adc_a0", "adc_a1", "adc_a2", "adc_a3"],
            discovery.Select(d => JsonDocument.Parse(d.Payload).RootElement.GetProperty("name").GetString()).Distinct());
        Assert.All(discovery, d => Assert.True(d.Retain));
        (string? Unit, string? Class, string? State) Discovery(string reading)
        {
            var d = JsonDocument.Parse(discovery.First(x => x.Topic == $"homeassistant/sensor/pinhole_gw1_{reading}/config").Payload).RootElement;
            return (d.GetProperty("unit_of_measurement").GetString(), d.GetProperty("device_class").GetString(), d.GetProperty("state_topic").GetString());
        }
        Assert.Equal(("°C", "temperature", "pinhole/gw1/sensors/room_temperature"), Discovery("room_temperature"));
        Assert.Equal(("%", "humidity", "pinhole/gw1/sensors/room_humidity"), Discovery("room_humidity"));
        Assert.Equal(("hPa", "pressure", "pinhole/gw1/sensors/room_pressure"), Discovery("room_pressure"));
        Assert.Equal(("V", "voltage", "pinhole/gw1/sensors/adc_a2"), Discovery("adc_a2"));

        Assert.Contains((1, 0x76), opened);
        Assert.Contains((1, 0x48), opened);
        Assert.Contains("pinhole_sensor_ok{sensor=\"room\"} 1", _probe.Render(), StringComparison.Ordinal);
        await stop.CancelAsync();
        foreach (var run in runs) await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public async Task A_chip_that_is_not_there_is_one_warning_not_a_crash_and_nothing_is_stored()
    {
        var buses = new SensorBuses { OpenI2c = (bus, _) => throw new FileNotFoundException($"no I2C bus /dev/i2c-{bus}") };
        var config = Config(new SensorConfig { Name = "office", Kind = "sht3x", Bus = 7, Address = "0x44", Interval = "100ms" });
        await using var telemetry = TelemetryPipelines.Create(config, _log, _probe.Meter, TimeProvider.System, buses, connector: null);
        var context = new RecordingContext();
        using var stop = new CancellationTokenSource();
        var run = telemetry.Pipelines.Single().RunAsync(context, stop.Token);
        await Eventually.True(() => context.Heartbeats >= 5, "5 polls");
        var warnings = _log.Entries.Where(e => e.Level == LogLevel.Warning).ToList();
        Assert.Single(warnings);
        Assert.Contains("sht3x on /dev/i2c-7 at 0x44: no I2C bus /dev/i2c-7", warnings[0].Message, StringComparison.Ordinal);
        Assert.StartsWith("fault: Missing", context.Statuses.Last(), StringComparison.Ordinal);
        Assert.Equal(0, telemetry.Outbox.LastSequence("office_temperature"));
        Assert.False(run.IsCompleted);
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public void Chip_config_problems_are_listed_with_their_json_path()
    {
        var problems = TelemetryPipelines.Validate(Config(
            new SensorConfig { Name = "room", Kind = "bme280", Bus = 1, Address = "0x48" },
            new SensorConfig { Name = "attic", Kind = "dht22", Chip = "/dev/gpiochip0", Interval = "500ms" },
            new SensorConfig { Name = "tank", Kind = "ds18b20", Address = "28-XYZ" },
            new SensorConfig { Name = "room_pressure", Kind = "file", Path = "/x" }));
        Assert.Contains(problems, p => p.StartsWith("sensors[0].address: \"0x48\" is not an address a bme280 answers at (0x76 or 0x77)", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[1].pin: required", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[1].interval:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[2].address:", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("sensors[3].name: reading \"room_pressure\" would share its MQTT topic", StringComparison.Ordinal));
        Assert.Empty(TelemetryPipelines.Validate(Config(new SensorConfig { Name = "room", Kind = "bme280", Bus = 1, Address = "0x77", Interval = "5s" })));
    }

    [Theory]
    [InlineData("bme280")]
    [InlineData("bmp280")]
    [InlineData("sht3x")]
    [InlineData("ads1115")]
    [InlineData("dht22")]
    [InlineData("ds18b20")]
    public void The_drivers_quantities_are_the_configs_readings_in_order(string kind)
    {
        var s = new SensorConfig { Name = "x", Kind = kind, Bus = 1, Address = kind == "ds18b20" ? "28-0316a2792dff" : "0x76", Chip = "/dev/gpiochip0", Pin = 4 };
        using var sensor = TelemetryPipelines.CreateChipSensor(s, SensorBuses.System);
        Assert.Equal(SensorKinds.QuantitiesOf(kind), sensor.Quantities.Select(q => q.Name));
        Assert.Equal(SensorKinds.ReadingsOf(s).Select(r => r.Unit), sensor.Quantities.Select(q => q.Unit));
        Assert.Equal(SensorKinds.ReadingsOf(s).Select(r => r.DeviceClass), sensor.Quantities.Select(q => q.DeviceClass));
    }
}
