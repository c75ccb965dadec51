using Pinhole.Transport.Metrics;

namespace Pinhole.Relay.Rtsp;

/// <summary>The RTSP server's Prometheus series.</summary>
internal sealed class RtspServerMetrics
{
    private int _sessions;
    private int _connections;

    public RtspServerMetrics(MetricsRegistry registry)
    {
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

    public void SessionOpened() => Interlocked.Increment(ref _sessions);
    public void SessionClosed() => Interlocked.Decrement(ref _sessions);
    public int ConnectionOpened() => Interlocked.Increment(ref _connections);
    public void ConnectionClosed() => Interlocked.Decrement(ref _connections);
}
