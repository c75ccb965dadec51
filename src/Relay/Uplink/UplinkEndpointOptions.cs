using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Uplink;

/// <summary>Settings of the relay's <c>/uplink</c> endpoint. Defaults suit production; tests shorten the intervals.</summary>
public sealed class UplinkEndpointOptions
{
    /// <summary>Path the endpoint is mapped at.</summary>
    public string Path { get; set; } = "/uplink";

    /// <summary>How often the relay pings the device (and tells the device to ping at the same rate).</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Nothing received for this long means the link is dead: the session is aborted.</summary>
    public TimeSpan DeadLinkTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Acks are merged: at most one per interval, and only when new frames arrived. Every ack wakes
    /// the device, so not more often than its in-flight bound (1 s) needs: a quarter of it.
    /// </summary>
    public TimeSpan AckInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a device has after the upgrade to send its hello.</summary>
    public TimeSpan HelloTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a replaced session gets to finish before the new one proceeds anyway.</summary>
    public TimeSpan ReplaceTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Tunnel stream windows and limits per uplink (docs/tunnels.md).</summary>
    public TunnelOptions Tunnels { get; set; } = new();

    /// <summary>
    /// Services a device may open tunnel streams to (<see cref="UplinkCapabilities.DeviceStreams"/>), by name: each
    /// connects to its target and returns the connected stream (the relay's half of the bridge). <c>mqtt</c> is the
    /// telemetry broker when relay.json has <c>telemetry</c>: a device whose own MQTT connection cannot get through
    /// (a proxy that strips <c>Upgrade</c>) carries it through its uplink instead. Empty: the capability is not offered.
    /// </summary>
    public Dictionary<string, Func<CancellationToken, Task<Stream>>> DeviceServices { get; } = new(StringComparer.Ordinal);

    /// <summary>Message size limits.</summary>
    public UplinkLimits Limits { get; set; } = UplinkLimits.Default;
}
