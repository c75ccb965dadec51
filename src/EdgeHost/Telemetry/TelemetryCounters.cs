using System.Diagnostics.Metrics;
using Pinhole.Transport.Metrics;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>
/// What the MQTT session counts, for the process (it outlives a session's restarts): the session and
/// the update trial read these fields; the <c>pinhole_telemetry_*</c> instruments only publish them.
/// </summary>
public sealed class TelemetryCounters
{
    private long _published, _refused, _connects;
    private int _connected;

    /// <summary>Creates the counters and publishes them on <paramref name="meter"/>.</summary>
    public TelemetryCounters(Meter meter)
    {
        ArgumentNullException.ThrowIfNull(meter);
        ObservedSeries.Counter(meter, "pinhole_telemetry_published_total", "Readings acknowledged by the MQTT broker (PUBACK).").Set(() => Published);
        ObservedSeries.Counter(meter, "pinhole_telemetry_refused_total", "Readings dropped because the broker refused them for good (not authorized, invalid topic or payload).").Set(() => Refused);
        ObservedSeries.Counter(meter, "pinhole_telemetry_mqtt_connects_total", "Successful connections to the MQTT broker.").Set(() => Connects);
        ObservedSeries.Gauge(meter, "pinhole_telemetry_mqtt_connected", "1 while connected to the MQTT broker.").Set(() => Connected ? 1 : 0);
        // One series per route, 1 for the one the current (or last) connection took: direct to the broker, or through the uplink.
        var route = ObservedSeries.Gauge(meter, "pinhole_telemetry_route", "1 for the way the MQTT session reaches the broker now: direct, or through the uplink (mqtt.via).");
        route.Set(() => Route == TelemetryRoutes.Direct && Connected ? 1 : 0, ("route", TelemetryRoutes.Direct));
        route.Set(() => Route == TelemetryRoutes.Uplink && Connected ? 1 : 0, ("route", TelemetryRoutes.Uplink));
    }

    private volatile string _route = TelemetryRoutes.Direct;

    /// <summary>The route of the current or last connection: <c>direct</c> or <c>uplink</c>.</summary>
    public string Route => _route;

    internal void SetRoute(string route) => _route = route;

    /// <summary>Readings acknowledged by the broker.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Readings the broker refused for good.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Successful connections.</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Whether a session is connected now.</summary>
    public bool Connected => Volatile.Read(ref _connected) != 0;

    internal void CountPublished() => Interlocked.Increment(ref _published);
    internal void CountRefused() => Interlocked.Increment(ref _refused);
    internal void CountConnect() => Interlocked.Increment(ref _connects);
    internal void SetConnected(bool connected) => Volatile.Write(ref _connected, connected ? 1 : 0);
}
