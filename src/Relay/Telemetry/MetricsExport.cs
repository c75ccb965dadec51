using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.Metrics;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Web;
using Pinhole.Streaming;
using Pinhole.Transport.Metrics;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// The relay's metrics: its meter (<see cref="PinholeMeters.Relay"/>) exported at <c>/metrics</c> by the
/// apps' shared <see cref="PrometheusExport"/> (src/Metrics), behind the relay's access check, and the
/// series it reads from the stream registry and the telemetry history. See docs/telemetry.md, "Metrics".
/// </summary>
internal static class MetricsExport
{
    /// <summary>Registers the relay's meter unless there is one (features call this, so they work alone).</summary>
    public static IServiceCollection AddRelayMeter(this IServiceCollection services) => services.AddPinholeMeter(PinholeMeters.Relay);

    /// <summary>
    /// Serves <c>/metrics</c>: the series name every device and camera, so it is for admins and
    /// scrapers with an API token (<c>pinhole-relay tokens add NAME</c>), not for anyone who can
    /// reach the relay, nor for viewers, unless relay.json says <c>"metrics": { "public": true }</c>.
    /// Also registers the series read from the stream registry and the telemetry history.
    /// </summary>
    public static void UseRelayMetrics(this WebApplication app, RelayConfig config)
    {
        var meter = app.Services.GetRequiredService<Meter>();
        ObserveStreams(meter, app.Services.GetRequiredService<MediaStreamRegistry>());
        if (app.Services.GetService<ITelemetryStore>() is { } history)
            ObserveSensors(meter, history, app.Services.GetRequiredService<DeviceRegistry>());
        app.UsePrometheusExport(context => config.Metrics.Public ? Task.FromResult<IResult?>(null) : RefuseAsync(context));
    }

    // The scraping endpoint is middleware, not an endpoint with a policy: it asks the same schemes itself.
    private static async Task<IResult?> RefuseAsync(HttpContext context)
    {
        var caller = await RelayAccess.AuthenticateAsync(context).ConfigureAwait(false);
        if (caller is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"pinhole\"";
            return Results.Text("/metrics needs Authorization: Bearer TOKEN (pinhole-relay tokens add NAME) or an admin's session (or \"metrics\": { \"public\": true } in relay.json)\n", statusCode: StatusCodes.Status401Unauthorized);
        }
        return RelayAccess.IsAdmin(caller) ? null
            : Results.Text($"/metrics is for admins and API tokens; {caller.Identity!.Name} is a viewer\n", statusCode: StatusCodes.Status403Forbidden);
    }

    private static void ObserveStreams(Meter meter, MediaStreamRegistry streams)
    {
        meter.CreateObservableGauge("pinhole_relay_viewers", () => streams.TotalViewers, description: "Viewers connected now, all protocols.");
        meter.CreateObservableGauge("pinhole_relay_stream_online", () => PerStream(streams, s => s.IsOnline ? 1 : 0), description: "1 while the device delivers this camera.");
        meter.CreateObservableCounter("pinhole_relay_stream_frames_total", () => PerStream(streams, s => s.FramesIn), description: "Access units received from the device.");
        meter.CreateObservableCounter("pinhole_relay_stream_bytes_total", () => PerStream(streams, s => s.BytesIn), description: "Payload bytes received from the device.");
        meter.CreateObservableGauge("pinhole_relay_stream_viewers", () => PerStream(streams, s => s.ViewerCount), description: "Viewers of this camera now.");
        meter.CreateObservableGauge("pinhole_relay_stream_viewer_drops", () => PerStream(streams, s => s.ViewerDrops), description: "Frames skipped by current viewers that fell behind.");
        meter.CreateObservableGauge("pinhole_relay_stream_bitrate_bps", () => PerStream(streams, s => s.BitsPerSecond), description: "Incoming bitrate over the last seconds.");
    }

    private static IEnumerable<Measurement<long>> PerStream(MediaStreamRegistry streams, Func<MediaStream, long> value) =>
        streams.All.Select(s => new Measurement<long>(value(s),
            new KeyValuePair<string, object?>("device", s.DeviceId), new KeyValuePair<string, object?>("camera", s.Camera)));

    private static void ObserveSensors(Meter meter, ITelemetryStore history, DeviceRegistry devices)
    {
        IEnumerable<Measurement<double>> Latest(Func<SensorSummary, double> value) =>
            devices.List().SelectMany(d => history.Sensors(d).Select(s => new Measurement<double>(value(s),
                new KeyValuePair<string, object?>("device", d), new KeyValuePair<string, object?>("sensor", s.Name),
                new KeyValuePair<string, object?>("unit", s.Unit))));
        meter.CreateObservableGauge("pinhole_sensor_value", () => Latest(s => s.Value), description: "Latest reading of each device's sensor, as stored by the relay.");
        meter.CreateObservableGauge("pinhole_sensor_timestamp_seconds", () => Latest(s => s.Timestamp.ToUnixTimeMilliseconds() / 1000.0), description: "When the latest reading was taken (Unix seconds).");
    }
}
