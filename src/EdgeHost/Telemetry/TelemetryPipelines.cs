using Microsoft.Extensions.Logging;
using System.Device.Gpio;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry.Outbox;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Metrics;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// Builds the telemetry pipelines from edge.json: one <c>sensor/NAME</c> pipeline per sensor and
/// one <c>mqtt</c> session (when <c>mqtt</c> is configured), sharing the disk-backed outbox in
/// <c>dataDir/telemetry-outbox</c>. Owns the outbox: dispose after the pipelines stopped.
/// </summary>
public sealed class TelemetryPipelines : IAsyncDisposable
{
    /// <summary>Default poll interval of a file sensor without <c>interval</c>.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(5);

    private TelemetryPipelines(TelemetryOutbox outbox, IReadOnlyList<IPipeline> pipelines)
    {
        Outbox = outbox;
        Pipelines = pipelines;
    }

    /// <summary>The pipelines for the supervisor to run.</summary>
    public IReadOnlyList<IPipeline> Pipelines { get; }

    /// <summary>The outbox the sensors write to and the MQTT session drains.</summary>
    public TelemetryOutbox Outbox { get; }

    /// <summary>Problems in the <c>deviceId</c>, <c>sensors</c> and <c>mqtt</c> keys, one line each with its JSON path; empty when valid.</summary>
    public static IReadOnlyList<string> Validate(EdgeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var problems = new List<string>();
        if (!IsTopicLevel(config.DeviceId))
            problems.Add("deviceId: must be non-empty without '/', '+', '#' or spaces (it is an MQTT topic level)");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < config.Sensors.Count; i++)
        {
            var s = config.Sensors[i];
            var at = $"sensors[{i}]";
            if (!IsTopicLevel(s.Name)) problems.Add($"{at}.name: must be non-empty without '/', '+', '#' or spaces (it is an MQTT topic level)");
            else if (!names.Add(s.Name)) problems.Add($"{at}.name: \"{s.Name}\" is used twice");
            switch (s.Kind)
            {
                case "file":
                    if (string.IsNullOrWhiteSpace(s.Path)) problems.Add($"{at}.path: required for kind \"file\"");
                    if (s.Interval is not null && (!Duration.TryParse(s.Interval, out var interval, out _) || interval < TimeSpan.FromMilliseconds(10)))
                        problems.Add($"{at}.interval: \"{s.Interval}\" is not a duration of at least 10ms like \"5s\" or \"500ms\"");
                    if (!double.IsFinite(s.Scale) || s.Scale == 0) problems.Add($"{at}.scale: must be a non-zero number");
                    if (!double.IsFinite(s.Offset)) problems.Add($"{at}.offset: must be a number");
                    break;
                case "gpio":
                    if (string.IsNullOrWhiteSpace(s.Chip)) problems.Add($"{at}.chip: required for kind \"gpio\", e.g. \"/dev/gpiochip0\"");
                    if (s.Line is not { } line || line < 0) problems.Add($"{at}.line: required for kind \"gpio\", a line offset >= 0");
                    if (s.Edge is not null && ParseEdge(s.Edge) is null) problems.Add($"{at}.edge: \"{s.Edge}\" is not rising, falling or both");
                    if (s.Debounce is not null && !Duration.TryParse(s.Debounce, out _, out _)) problems.Add($"{at}.debounce: \"{s.Debounce}\" is not a duration like \"20ms\"");
                    break;
                case "bme280" or "bmp280" or "sht3x" or "ads1115":
                    if (s.Bus is not >= 0) problems.Add($"{at}.bus: required for kind \"{s.Kind}\", an I2C bus number such as 1 for /dev/i2c-1");
                    if (!SensorKinds.TryParseI2cAddress(s.Address, out var address) || !SensorKinds.I2cAddresses[s.Kind].Contains(address))
                        problems.Add($"{at}.address: \"{s.Address}\" is not an address a {s.Kind} answers at ({string.Join(" or ", SensorKinds.I2cAddresses[s.Kind].Select(a => $"0x{a:x2}"))})");
                    ValidateChipInterval(s, at, TimeSpan.FromMilliseconds(100), problems);
                    break;
                case "dht22":
                    if (string.IsNullOrWhiteSpace(s.Chip)) problems.Add($"{at}.chip: required for kind \"dht22\", e.g. \"/dev/gpiochip0\"");
                    if (s.Pin is not >= 0) problems.Add($"{at}.pin: required for kind \"dht22\", the GPIO line of the data pin");
                    ValidateChipInterval(s, at, TimeSpan.FromSeconds(2), problems);
                    break;
                case "ds18b20":
                    if (!SensorKinds.IsW1ThermometerId(s.Address)) problems.Add($"{at}.address: \"{s.Address}\" is not a 1-Wire id like \"28-0316a2792dff\"");
                    ValidateChipInterval(s, at, TimeSpan.FromSeconds(1), problems);
                    break;
                default:
                    problems.Add($"{at}.kind: \"{s.Kind}\" is not one of {string.Join(", ", SensorKinds.All)}");
                    break;
            }
        }
        // A chip's readings are NAME_QUANTITY topics; two sensors of the same name are reported above.
        var readings = new Dictionary<string, string>(StringComparer.Ordinal); // reading -> sensor
        for (var i = 0; i < config.Sensors.Count; i++)
        {
            var s = config.Sensors[i];
            if (!IsTopicLevel(s.Name) || !SensorKinds.All.Contains(s.Kind)) continue;
            foreach (var reading in SensorKinds.ReadingsOf(s))
            {
                if (!readings.TryAdd(reading.Name, s.Name) && readings[reading.Name] != s.Name)
                    problems.Add($"sensors[{i}].name: reading \"{reading.Name}\" would share its MQTT topic with sensor \"{readings[reading.Name]}\"");
            }
        }
        if (config.Mqtt is { } mqtt)
        {
            if (!Uri.TryCreate(mqtt.Url, UriKind.Absolute, out var url) || url.Scheme is not ("ws" or "wss" or "mqtt" or "mqtts" or "tcp"))
                problems.Add("mqtt.url: must be a ws://, wss://, mqtt:// or mqtts:// URL");
            if (string.IsNullOrEmpty(mqtt.TopicPrefix) || mqtt.TopicPrefix.Contains('+', StringComparison.Ordinal) || mqtt.TopicPrefix.Contains('#', StringComparison.Ordinal))
                problems.Add("mqtt.topicPrefix: must be non-empty without '+' or '#'");
            if (ParseRoute(mqtt.Via) is null)
                problems.Add($"mqtt.via: \"{mqtt.Via}\" is not auto, direct or uplink");
        }
        if (string.IsNullOrWhiteSpace(config.DataDir)) problems.Add("dataDir: required");
        return problems;
    }

    /// <summary>
    /// Validates the config, opens the outbox and builds the pipelines: GPIO through System.Device.Gpio
    /// over libgpiod, I2C chips through Iot.Device.Bindings, MQTT through MQTTnet (<see cref="MqttNetConnector"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The config has problems (all of them are listed).</exception>
    public static TelemetryPipelines Create(EdgeConfig config, ILoggerFactory loggerFactory, Meter meter, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(loggerFactory);
        var time = timeProvider ?? TimeProvider.System;
        return Create(config, loggerFactory, meter, time, SensorBuses.System, new MqttNetConnector(loggerFactory, time));
    }

    internal static TelemetryPipelines Create(
        EdgeConfig config,
        ILoggerFactory loggerFactory,
        Meter meter,
        TimeProvider? timeProvider,
        SensorBuses buses,
        ITelemetryMqttConnector? connector,
        OutboxOptions? outboxOptions = null,
        Backoff? backoff = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var problems = Validate(config);
        if (problems.Count > 0)
            throw new ArgumentException("invalid telemetry configuration:\n" + string.Join('\n', problems), nameof(config));
        var time = timeProvider ?? TimeProvider.System;
        var logger = loggerFactory.CreateLogger("Pinhole.EdgeHost.Telemetry");
        var outbox = OpenOutbox(config.DataDir, loggerFactory, meter, time, outboxOptions);
        var pipelines = new List<IPipeline>();
        foreach (var s in config.Sensors)
            pipelines.Add(CreateSensorPipeline(s, outbox, time, logger, meter, buses));
        if (config.Mqtt is not null && connector is not null)
            pipelines.Add(CreateMqttSession(config, outbox, connector, loggerFactory, new TelemetryCounters(meter), time, backoff));
        return new TelemetryPipelines(outbox, pipelines);
    }

    /// <summary>The outbox directory inside <c>dataDir</c>.</summary>
    internal static string OutboxDirectory(string dataDir) => Path.Combine(dataDir, "telemetry-outbox");

    internal static TelemetryOutbox OpenOutbox(string dataDir, ILoggerFactory loggerFactory, Meter meter, TimeProvider time, OutboxOptions? options = null)
    {
        var outbox = TelemetryOutbox.Open(OutboxDirectory(dataDir), options, loggerFactory.CreateLogger<TelemetryOutbox>(), time);
        // Replaces the series of an outbox opened before (one per dataDir and process in practice).
        ObservedSeries.Gauge(meter, "pinhole_telemetry_outbox_pending", "Readings on disk waiting for the broker's acknowledgement.").Set(() => outbox.PendingCount);
        ObservedSeries.Gauge(meter, "pinhole_telemetry_outbox_bytes", "Bytes of the telemetry outbox on disk.").Set(() => outbox.SizeBytes);
        ObservedSeries.Gauge(meter, "pinhole_telemetry_outbox_dropped", "Readings dropped unsent because the outbox was full, since start.").Set(() => outbox.DroppedCount);
        return outbox;
    }

    internal static IPipeline CreateSensorPipeline(SensorConfig s, TelemetryOutbox outbox, TimeProvider time, ILogger logger, Meter meter, SensorBuses buses)
    {
        var unit = s.Unit ?? "";
        var interval = s.Interval is null ? DefaultInterval : ParseDuration(s.Interval);
        switch (s.Kind)
        {
            case "file":
                var sensor = FileSensor.Create(s.Path!, s.Scale, s.Offset, unit, time);
                return new FileSensorPipeline(s.Name, sensor, interval, outbox, time, logger, meter);
            case "gpio":
                var chip = s.Chip!;
                return new GpioSensorPipeline(s.Name, () => buses.OpenGpioChip(chip), s.Line!.Value, ParseEdge(s.Edge ?? "both")!.Value,
                    s.Debounce is null ? TimeSpan.Zero : ParseDuration(s.Debounce), unit, outbox, time, logger, meter);
            default:
                return new ChipSensorPipeline(s.Name, CreateChipSensor(s, buses), SensorKinds.ReadingsOf(s), interval, outbox, time, logger, meter);
        }
    }

    internal static ChipSensor CreateChipSensor(SensorConfig s, SensorBuses buses)
    {
        if (s.Kind == "ds18b20")
            return new Ds18b20Sensor(buses.W1Devices, s.Address!);
        if (s.Kind == "dht22")
        {
            var chip = s.Chip!;
            return new Dht22Sensor(() => buses.OpenGpioChip(chip), s.Pin!.Value, $"dht22 on {chip} line {s.Pin}");
        }
        var bus = s.Bus!.Value;
        SensorKinds.TryParseI2cAddress(s.Address, out var address);
        var description = $"{s.Kind} on /dev/i2c-{bus} at 0x{address:x2}";
        Func<System.Device.I2c.I2cDevice> open = () => buses.OpenI2c(bus, address);
        return s.Kind switch
        {
            "bme280" => new Bme280Sensor(open, description),
            "bmp280" => new Bmp280Sensor(open, description),
            "sht3x" => new Sht3xSensor(open, description),
            "ads1115" => new Ads1115Sensor(open, description),
            _ => throw new ArgumentException($"unknown sensor kind \"{s.Kind}\"", nameof(s)),
        };
    }

    private static void ValidateChipInterval(SensorConfig s, string at, TimeSpan minimum, List<string> problems)
    {
        if (s.Interval is not null && (!Duration.TryParse(s.Interval, out var interval, out _) || interval < minimum))
            problems.Add($"{at}.interval: \"{s.Interval}\" is not a duration of at least {minimum.TotalMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}ms for kind \"{s.Kind}\"");
    }

    internal static MqttTelemetrySession CreateMqttSession(EdgeConfig config, TelemetryOutbox outbox, ITelemetryMqttConnector connector,
        ILoggerFactory loggerFactory, TelemetryCounters counters, TimeProvider time, Backoff? backoff = null)
    {
        var mqtt = config.Mqtt ?? throw new ArgumentException("no mqtt section", nameof(config));
        var topics = new TelemetryTopics(mqtt.TopicPrefix.TrimEnd('/'), config.DeviceId);
        var options = new TelemetryConnectOptions(
            new Uri(mqtt.Url), $"pinhole-edge-{config.DeviceId}", mqtt.Username, mqtt.Password,
            topics.Status, TelemetryPayloads.Offline,
            KeepAlive: TimeSpan.FromSeconds(15), SessionExpiry: TimeSpan.FromDays(1), config.TrustedCa,
            mqtt.ProtocolVersion == "3.1.1" ? TelemetryProtocolVersion.V311 : TelemetryProtocolVersion.V500);
        var sensors = config.Sensors.SelectMany(SensorKinds.ReadingsOf).ToList();
        return new MqttTelemetrySession(connector, options, topics, sensors, outbox, counters, time,
            loggerFactory.CreateLogger<MqttTelemetrySession>(), backoff);
    }

    /// <summary>Closes the outbox (pending writes finish first).</summary>
    public ValueTask DisposeAsync() => Outbox.DisposeAsync();

    private static TimeSpan ParseDuration(string text) =>
        Duration.TryParse(text, out var d, out var error) ? d : throw new FormatException(error);

    internal static TelemetryRoute? ParseRoute(string? via) => via switch
    {
        null or "auto" => TelemetryRoute.Auto,
        "direct" => TelemetryRoute.Direct,
        "uplink" => TelemetryRoute.Uplink,
        _ => null,
    };

    internal static PinEventTypes? ParseEdge(string edge) => edge switch
    {
        "rising" => PinEventTypes.Rising,
        "falling" => PinEventTypes.Falling,
        "both" => PinEventTypes.Rising | PinEventTypes.Falling,
        _ => null,
    };

    private static bool IsTopicLevel(string? s) =>
        !string.IsNullOrEmpty(s) && !s.Any(c => c is '/' or '+' or '#' || char.IsWhiteSpace(c) || char.IsControl(c));
}
