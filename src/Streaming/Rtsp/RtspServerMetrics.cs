using System.Diagnostics.Metrics;
using Pinhole.Transport.Metrics;

namespace Pinhole.Streaming.Rtsp;

/// <summary>The RTSP server's instruments (<c>pinhole_rtsp_*</c>) and the counts it keeps for itself.</summary>
internal sealed class RtspServerMetrics
{
    private int _sessions;
    private int _connections;
    private long _viewerNumbers;
    private readonly ObservedSeries _viewerDrops;

    public RtspServerMetrics(Meter meter)
    {
        ArgumentNullException.ThrowIfNull(meter);
        meter.CreateObservableGauge("pinhole_rtsp_sessions", () => Sessions, description: "RTSP sessions now");
        meter.CreateObservableGauge("pinhole_rtsp_connections", () => Connections, description: "RTSP TCP connections now");
        SessionsStarted = meter.CreateCounter<long>("pinhole_rtsp_sessions_total", description: "RTSP sessions created");
        BytesSent = meter.CreateCounter<long>("pinhole_rtsp_bytes_sent_total", description: "RTP bytes sent to RTSP viewers (headers included)");
        FramesSent = meter.CreateCounter<long>("pinhole_rtsp_frames_sent_total", description: "Access units sent to RTSP viewers");
        FramesDropped = meter.CreateCounter<long>("pinhole_rtsp_viewer_dropped_frames_total", description: "Access units RTSP viewers skipped because they fell behind");
        Rejected = meter.CreateCounter<long>("pinhole_rtsp_rejected_total", description: "RTSP connections or requests refused by a limit");
        AuthFailures = meter.CreateCounter<long>("pinhole_rtsp_auth_failures_total", description: "RTSP requests with wrong credentials");
        Redirects = meter.CreateCounter<long>("pinhole_rtsp_redirects_total", description: "RTSP DESCRIBEs sent to the relay that holds the device's uplink (302)");
        // Counters are scraped from the start (at 0), not from their first event.
        foreach (var counter in (Counter<long>[])[SessionsStarted, BytesSent, FramesSent, FramesDropped, Rejected, AuthFailures, Redirects])
            counter.Add(0);
        _viewerDrops = ObservedSeries.Gauge(meter, "pinhole_rtsp_viewer_dropped_frames", "Frames this RTSP viewer skipped because it fell behind (current sessions)");
    }

    public Counter<long> SessionsStarted { get; }
    public Counter<long> BytesSent { get; }
    public Counter<long> FramesSent { get; }
    public Counter<long> FramesDropped { get; }
    public Counter<long> Rejected { get; }
    public Counter<long> AuthFailures { get; }
    public Counter<long> Redirects { get; }
    public void Redirected() => Redirects.Add(1);
    public int Sessions => Volatile.Read(ref _sessions);
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Publishes one viewer's skipped frames, labelled by stream and a viewer number (not the
    /// session id, which is the viewer's handle on its session), until <see cref="RemoveViewer"/>.</summary>
    public string AddViewer(string device, string camera, Func<double> dropped)
    {
        var viewer = Interlocked.Increment(ref _viewerNumbers).ToString(System.Globalization.CultureInfo.InvariantCulture);
        _viewerDrops.Set(dropped, ("device", device), ("camera", camera), ("viewer", viewer));
        return viewer;
    }

    public void RemoveViewer(string device, string camera, string viewer) =>
        _viewerDrops.Remove(("device", device), ("camera", camera), ("viewer", viewer));

    public void SessionOpened() => Interlocked.Increment(ref _sessions);
    public void SessionClosed() => Interlocked.Decrement(ref _sessions);
    public int ConnectionOpened() => Interlocked.Increment(ref _connections);
    public void ConnectionClosed() => Interlocked.Decrement(ref _connections);
}
