using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Pinhole.Drivers.Sensors;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Telemetry.Outbox;
using System.Diagnostics.Metrics;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// The telemetry feature for the supervisor: one <c>sensor/NAME</c> pipeline per sensor and one
/// <c>mqtt</c> session, all sharing the outbox in <c>dataDir/telemetry-outbox</c>. The outbox is
/// opened on first use (not while planning) and lives as long as this singleton, so a restarted
/// or reconfigured pipeline never loses what is queued; the container disposes it at shutdown,
/// after the supervisor stopped the pipelines.
/// </summary>
internal sealed class TelemetryPipelineFactory : IPipelineFactory, IAsyncDisposable
{
    private readonly ILoggerFactory _loggerFactory;
    private readonly Meter _meter;
    private readonly TelemetryCounters _counters;
    private readonly TimeProvider _time;
    private readonly SensorBuses _buses;
    private readonly ITelemetryMqttConnector _connector;
    private readonly ConcurrentDictionary<string, Lazy<TelemetryOutbox>> _outboxes = new(StringComparer.Ordinal);

    private readonly IServiceProvider? _services;

    /// <summary>The factory of the running edge. The uplink client (for <c>mqtt.via</c>) is looked up in
    /// <paramref name="services"/> only when the MQTT session starts: the uplink client's own dependencies (the fleet
    /// agent) reach the pipeline factories, so taking it in this constructor would be a cycle.</summary>
    public TelemetryPipelineFactory(ILoggerFactory loggerFactory, Meter meter, TelemetryCounters counters, TimeProvider time, IServiceProvider? services = null)
        : this(loggerFactory, meter, counters, time, SensorBuses.System, new MqttNetConnector(loggerFactory, time))
    {
        _services = services;
    }

    internal TelemetryPipelineFactory(ILoggerFactory loggerFactory, Meter meter, TelemetryCounters counters, TimeProvider time,
        SensorBuses buses, ITelemetryMqttConnector connector)
    {
        _loggerFactory = loggerFactory;
        _meter = meter;
        _counters = counters;
        _time = time;
        _buses = buses;
        _connector = connector;
    }

    public IEnumerable<PipelineSpec> CreatePipelines(EdgeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Sensors.Count == 0 && config.Mqtt is null)
            yield break;
        var dataDir = config.DataDir;
        var logger = _loggerFactory.CreateLogger("Pinhole.EdgeHost.Telemetry");
        foreach (var sensor in config.Sensors)
        {
            var s = sensor;
            yield return PipelineSpec.For($"sensor/{s.Name}", new { s, dataDir },
                () => TelemetryPipelines.CreateSensorPipeline(s, Outbox(dataDir), _time, logger, _meter, _buses));
        }
        if (config.Mqtt is { } mqtt)
        {
            // Everything the session reads: the broker, the identity, and the sensors' names and
            // units (they are in the discovery configs).
            var fingerprint = new { mqtt, config.DeviceId, config.TrustedCa, dataDir, sensors = config.Sensors.SelectMany(SensorKinds.ReadingsOf).ToList() };
            yield return PipelineSpec.For("mqtt", fingerprint,
                () => TelemetryPipelines.CreateMqttSession(config, Outbox(dataDir), Route(mqtt), _loggerFactory, _counters, _time));
        }
    }

    // Without an uplink client (tests, a device with no relays) the connector goes straight to the broker.
    private ITelemetryMqttConnector Route(MqttConfig mqtt) =>
        _services?.GetService(typeof(Uplink.UplinkClient)) is not Uplink.UplinkClient uplink
            || TelemetryPipelines.ParseRoute(mqtt.Via) is not { } route || route == TelemetryRoute.Direct
            ? _connector
            : new UplinkMqttConnector(_connector, uplink, route, _counters, _loggerFactory.CreateLogger<UplinkMqttConnector>());

    internal TelemetryOutbox Outbox(string dataDir) =>
        _outboxes.GetOrAdd(Path.GetFullPath(TelemetryPipelines.OutboxDirectory(dataDir)),
            _ => new Lazy<TelemetryOutbox>(() => TelemetryPipelines.OpenOutbox(dataDir, _loggerFactory, _meter, _time))).Value;

    public async ValueTask DisposeAsync()
    {
        foreach (var outbox in _outboxes.Values.Where(o => o.IsValueCreated))
            await outbox.Value.DisposeAsync().ConfigureAwait(false);
        _outboxes.Clear();
    }
}
