using System.Diagnostics.Metrics;

namespace Pinhole.Relay.Uplink;

/// <summary>The relay's uplink instruments (<c>pinhole_uplink_*</c>), created once on the relay's meter.</summary>
internal sealed class UplinkMetrics
{
    public UplinkMetrics(Meter meter)
    {
        ArgumentNullException.ThrowIfNull(meter);
        Rejects = meter.CreateCounter<long>("pinhole_uplink_rejects_total", description: "Uplink attempts refused.");
        Sessions = meter.CreateCounter<long>("pinhole_uplink_sessions_total", description: "Uplink sessions accepted.");
        ProtocolErrors = meter.CreateCounter<long>("pinhole_uplink_protocol_errors_total", description: "Uplink sessions ended by a protocol error.");
        DeadLinks = meter.CreateCounter<long>("pinhole_uplink_dead_links_total", description: "Uplinks closed because heartbeats stopped.");
        Frames = meter.CreateCounter<long>("pinhole_uplink_frames_total", description: "Access units received over device uplinks.");
        Bytes = meter.CreateCounter<long>("pinhole_uplink_bytes_total", description: "Media bytes received over device uplinks.");
        DeviceDrops = meter.CreateCounter<long>("pinhole_uplink_device_drops_total", description: "Frames the device dropped because its uplink was too slow (device-reported).");
        DeviceStreams = meter.CreateCounter<long>("pinhole_uplink_device_streams_total", description: "Streams devices opened through their uplinks to a relay service (service=mqtt: telemetry carried through the uplink).");
        Rtt = meter.CreateGauge<double>("pinhole_uplink_rtt_seconds", description: "Round-trip time of relay pings over the uplink.");
        Meter = meter;
    }

    public Meter Meter { get; }
    public Counter<long> Rejects { get; }
    public Counter<long> Sessions { get; }
    public Counter<long> ProtocolErrors { get; }
    public Counter<long> DeadLinks { get; }
    public Counter<long> Frames { get; }
    public Counter<long> Bytes { get; }
    public Counter<long> DeviceDrops { get; }
    public Counter<long> DeviceStreams { get; }
    public Gauge<double> Rtt { get; }

    public void Reject(string reason) => Rejects.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
