using System.Diagnostics.Metrics;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// What the uplink client measures: the values it keeps for itself (round trip, bytes in flight, link rate, frames sent),
/// read by status and the tunnel budget, and the instruments that only publish them.
/// </summary>
internal sealed class UplinkClientMetrics
{
    private readonly Counter<long> _framesSent, _bytesSent, _connects, _deadLinks, _fallbacks;
    private readonly Gauge<double> _rttGauge, _inFlightGauge, _rateGauge, _connectedGauge, _transportGauge;
    private long _framesSentCount;
    private long _rttMicros = -1, _bytesInFlight, _linkBytesPerSecond;

    public UplinkClientMetrics(Meter meter)
    {
        _framesSent = meter.CreateCounter<long>("pinhole_uplink_frames_sent_total", description: "Access units sent over the uplink.");
        _bytesSent = meter.CreateCounter<long>("pinhole_uplink_bytes_sent_total", description: "Media bytes sent over the uplink.");
        _connects = meter.CreateCounter<long>("pinhole_uplink_connects_total", description: "Uplink sessions established.");
        _deadLinks = meter.CreateCounter<long>("pinhole_uplink_dead_links_total", description: "Uplinks abandoned because heartbeats stopped.");
        _rttGauge = meter.CreateGauge<double>("pinhole_uplink_rtt_seconds", description: "Uplink round-trip time from the latest ack or pong.");
        _inFlightGauge = meter.CreateGauge<double>("pinhole_uplink_bytes_in_flight", description: "Media bytes sent but not yet acknowledged by the relay.");
        _rateGauge = meter.CreateGauge<double>("pinhole_uplink_link_rate_bytes_per_second", description: "The uplink's measured rate: what the link carried while busy over the last 5 s, else the delivery rate of the last 2 s; 0 before the first acks.");
        _connectedGauge = meter.CreateGauge<double>("pinhole_uplink_connected", description: "1 while the uplink is connected to this relay.");
        _fallbacks = meter.CreateCounter<long>("pinhole_uplink_http_fallbacks_total", description: "WebSocket upgrades refused on the way (a proxy stripped Upgrade) and retried over HTTP streaming.");
        _transportGauge = meter.CreateGauge<double>("pinhole_uplink_transport", description: "1 for the transport the uplink uses now (websocket or http).");
        _fallbacks.Add(0);
        // Counters start at 0 in the exposition, as they did before the first event.
        _deadLinks.Add(0);
        _connects.Add(0);
        _framesSent.Add(0);
        _bytesSent.Add(0);
    }

    /// <summary>Frames sent since start.</summary>
    public long FramesSent => Interlocked.Read(ref _framesSentCount);

    /// <summary>Latest round-trip time, or null before the first ack or pong.</summary>
    public TimeSpan? RoundTripTime { get { var v = Interlocked.Read(ref _rttMicros); return v < 0 ? null : TimeSpan.FromMicroseconds(v); } }

    /// <summary>Media bytes sent and not yet acknowledged.</summary>
    public long BytesInFlight => Interlocked.Read(ref _bytesInFlight);

    /// <summary>The link's measured rate in bytes per second; 0 while disconnected or before the first acks.</summary>
    public long LinkBytesPerSecond => Interlocked.Read(ref _linkBytesPerSecond);

    public static string RelayLabel(Uri relay) => relay.GetLeftPart(UriPartial.Path);

    /// <summary>Every configured relay shows as not connected until one is.</summary>
    public void InitRelays(UplinkClientOptions options)
    {
        foreach (var relay in options.Relays)
            _connectedGauge.Record(0, new KeyValuePair<string, object?>("relay", RelayLabel(relay)));
    }

    public void FrameSent(int payloadBytes)
    {
        Interlocked.Increment(ref _framesSentCount);
        _framesSent.Add(1);
        _bytesSent.Add(UplinkProtocol.FrameHeaderSize + payloadBytes);
    }

    public void DeadLink() => _deadLinks.Add(1);

    public void FellBackToHttp() => _fallbacks.Add(1);

    public void SetRtt(ulong micros)
    {
        Interlocked.Exchange(ref _rttMicros, (long)micros);
        _rttGauge.Record(micros / 1e6);
    }

    public void SetInFlight(long bytes)
    {
        Interlocked.Exchange(ref _bytesInFlight, bytes);
        _inFlightGauge.Record(bytes);
    }

    public void SetLinkRate(double bytesPerSecond)
    {
        _rateGauge.Record(bytesPerSecond);
        Interlocked.Exchange(ref _linkBytesPerSecond, (long)bytesPerSecond);
    }

    /// <summary>A session began on <paramref name="relay"/> over <paramref name="transport"/>.</summary>
    public void Connected(Uri relay, UplinkTransport transport)
    {
        _connects.Add(1);
        _connectedGauge.Record(1, new KeyValuePair<string, object?>("relay", RelayLabel(relay)));
        var other = transport == UplinkTransport.Http ? UplinkTransport.WebSocket : UplinkTransport.Http;
        _transportGauge.Record(0, new KeyValuePair<string, object?>("transport", UplinkClient.TransportName(other)));
        _transportGauge.Record(1, new KeyValuePair<string, object?>("transport", UplinkClient.TransportName(transport)));
    }

    /// <summary>The session on <paramref name="relay"/> ended: nothing connected, in flight or measured.</summary>
    public void Disconnected(Uri relay, UplinkTransport transport)
    {
        _connectedGauge.Record(0, new KeyValuePair<string, object?>("relay", RelayLabel(relay)));
        _transportGauge.Record(0, new KeyValuePair<string, object?>("transport", UplinkClient.TransportName(transport)));
        SetInFlight(0);
        SetLinkRate(0);
    }
}
