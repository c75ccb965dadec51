using Pinhole.Transport.Metrics;

namespace Pinhole.Relay.Rtsp;

/// <summary>The RTSP server's Prometheus series.</summary>
internal sealed class RtspServerMetrics
{
    private int _sessions;
    private int _connections;

    private const string ViewerDrops = "pinhole_rtsp_viewer_dropped_frames";
    private readonly MetricsRegistry _registry;

    public RtspServerMetrics(MetricsRegistry registry)
    {
        _registry = registry;
        registry.ObservableGauge("pinhole_rtsp_sessions", "RTSP sessions now", () => Volatile.Read(ref _sessions));
        registry.ObservableGauge("pinhole_rtsp_connections", "RTSP TCP connections now", () => Volatile.Read(ref _connections));
        SessionsStarted = registry.Counter("pinhole_rtsp_sessions_total", "RTSP sessions created");
        BytesSent = registry.Counter("pinhole_rtsp_bytes_sent_total", "RTP bytes sent to RTSP viewers (headers included)");
        FramesSent = registry.Counter("pinhole_rtsp_frames_sent_total", "Access units sent to RTSP viewers");
        FramesDropped = registry.Counter("pinhole_rtsp_viewer_dropped_frames_total", "Access units RTSP viewers skipped because they fell behind");
        Rejected = registry.Counter("pinhole_rtsp_rejected_total", "RTSP connections or requests refused by a limit");
        AuthFailures = registry.Counter("pinhole_rtsp_auth_failures_total", "RTSP requests with wrong credentials");
    }

    public Counter SessionsStarted { get; }
    public Counter BytesSent { get; }
    public Counter FramesSent { get; }
    public Counter FramesDropped { get; }
    public Counter Rejected { get; }
    public Counter AuthFailures { get; }
    public int Sessions => Volatile.Read(ref _sessions);
    public int Connections => Volatile.Read(ref _connections);

    private long _viewerNumbers;

    /// <summary>Publishes one viewer's skipped frames, labelled by stream and a viewer number (not the
    /// session id, which is the viewer's handle on its session), until <see cref="RemoveViewer"/>.</summary>
    public string AddViewer(string device, string camera, Func<double> dropped)
    {
        var viewer = Interlocked.Increment(ref _viewerNumbers).ToString(System.Globalization.CultureInfo.InvariantCulture);
        _registry.ObservableGauge(ViewerDrops, "Frames this RTSP viewer skipped because it fell behind (current sessions)", dropped,
            ("device", device), ("camera", camera), ("viewer", viewer));
        return viewer;
    }

    public void RemoveViewer(string device, string camera, string viewer) =>
        _registry.Remove(ViewerDrops, ("device", device), ("camera", camera), ("viewer", viewer));

    public void SessionOpened() => Interlocked.Increment(ref _sessions);
    public void SessionClosed() => Interlocked.Decrement(ref _sessions);
    public int ConnectionOpened() => Interlocked.Increment(ref _connections);
    public void ConnectionClosed() => Interlocked.Decrement(ref _connections);
}
