using Microsoft.Extensions.Logging;
using Pinhole.Drivers.Cameras;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Transport.Media;
using System.Diagnostics.Metrics;
using Pinhole.Transport.Metrics;
using Pinhole.Transport.Rtsp;

namespace Pinhole.EdgeHost.Cameras;

/// <summary>
/// Runs one camera source into its uplink sink as the pipeline <c>camera/NAME</c>. Every frame is a
/// heartbeat, so a camera that stops delivering for <see cref="StallTimeout"/> is restarted by the
/// supervisor even when its source hangs without failing. For an <c>rtsp://</c> camera the status line
/// and <c>pinhole_camera_transport</c> say which lower transport (TCP or UDP) it plays over.
/// </summary>
public sealed class CameraPipeline : IPipeline
{
    private const string TransportMetric = "pinhole_camera_transport";
    private const string TransportHelp = "1 for the lower transport (tcp or udp) an rtsp:// camera plays over, or last played over; 0 for the other.";

    private readonly Func<IMediaSink, CancellationToken, Task> _runSource;
    private readonly IMediaSink _output;
    private RtspCameraSource? _rtsp;
    private ObservedSeries? _transportMetric;

    /// <summary>Creates the pipeline.</summary>
    /// <param name="camera">The camera's name (from edge.json).</param>
    /// <param name="runSource">Runs the source until cancelled or failed, delivering into the given sink
    /// (for example <c>CameraSource.RunAsync</c>).</param>
    /// <param name="output">Where frames go: the uplink's sink for this camera.</param>
    /// <param name="stallTimeout">No frame for this long means stalled. Default 10 s.</param>
    public CameraPipeline(string camera, Func<IMediaSink, CancellationToken, Task> runSource, IMediaSink output, TimeSpan? stallTimeout = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(camera);
        Camera = camera;
        _runSource = runSource ?? throw new ArgumentNullException(nameof(runSource));
        _output = output ?? throw new ArgumentNullException(nameof(output));
        StallTimeout = stallTimeout ?? TimeSpan.FromSeconds(10);
    }

    /// <summary>The pipeline for a camera from edge.json: a fresh <see cref="CameraSource"/> into the uplink's sink for it.</summary>
    /// <exception cref="CameraConfigurationException">The source string is not <c>rtsp://…</c> or <c>exec:…</c>.</exception>
    public static CameraPipeline Create(CameraConfig camera, UplinkClient uplink, ILoggerFactory loggerFactory) =>
        Create(camera, CreateSource(camera, loggerFactory), uplink);

    /// <summary>The source for a camera from edge.json (<c>cameras[].source</c> and <c>transport</c>).</summary>
    /// <exception cref="CameraConfigurationException">The source string is not <c>rtsp://…</c> or <c>exec:…</c>.</exception>
    public static CameraSource CreateSource(CameraConfig camera, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(camera);
        var transport = camera.Transport switch
        {
            "tcp" => CameraTransport.Tcp,
            "udp" => CameraTransport.Udp,
            _ => CameraTransport.Auto,
        };
        return CameraSource.Create(camera.Source, transport, loggerFactory);
    }

    /// <summary>
    /// The pipeline for a camera from edge.json reading <paramref name="source"/>. Pass the same source
    /// to every restart of the camera's pipeline: an <c>rtsp://</c> source remembers the transport that
    /// worked and tries it first. With <paramref name="meter"/>, <c>pinhole_camera_transport</c> shows it.
    /// </summary>
    public static CameraPipeline Create(CameraConfig camera, CameraSource source, UplinkClient uplink, Meter? meter = null)
    {
        ArgumentNullException.ThrowIfNull(camera);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(uplink);
        var name = camera.Name;
        return new CameraPipeline(name, async (sink, ct) =>
        {
            try
            {
                await source.RunAsync(sink, ct);
            }
            finally
            {
                // Failed, ended or stopped: viewers learn the camera is offline now, not after a timeout.
                uplink.EndStream(name);
            }
        }, uplink.GetSink(name))
        {
            _rtsp = source as RtspCameraSource,
            _transportMetric = meter is null ? null : ObservedSeries.Gauge(meter, TransportMetric, TransportHelp),
        };
    }

    /// <summary>The camera's name.</summary>
    public string Camera { get; }

    /// <inheritdoc />
    public string Name => "camera/" + Camera;

    /// <inheritdoc />
    public TimeSpan StallTimeout { get; }

    /// <summary>Frames delivered since the pipeline was created.</summary>
    public long Frames => Interlocked.Read(ref _frames);

    private long _frames;

    /// <inheritdoc />
    public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.SetStatus("starting");
        RegisterTransportMetric();
        try
        {
            await _runSource(new HeartbeatSink(this, context), cancellationToken);
        }
        finally
        {
            // Stopped (removed, changed in the config, or stalled and about to be restarted): the
            // next pipeline for this camera registers its own series.
            if (cancellationToken.IsCancellationRequested) RemoveTransportMetric();
        }
        // Returning is a failure for the supervisor (it restarts us); say why in the status.
        if (!cancellationToken.IsCancellationRequested) context.SetStatus("source ended");
    }

    /// <summary>"TCP" or "UDP" for an rtsp:// camera that played, else null.</summary>
    public string? Transport => _rtsp?.Transport switch
    {
        RtspLowerTransport.Tcp => "TCP",
        RtspLowerTransport.Udp => "UDP",
        _ => null,
    };

    private void RegisterTransportMetric()
    {
        if (_rtsp is not { } rtsp || _transportMetric is null) return;
        _transportMetric.Set(() => rtsp.Transport == RtspLowerTransport.Tcp ? 1 : 0, ("camera", Camera), ("transport", "tcp"));
        _transportMetric.Set(() => rtsp.Transport == RtspLowerTransport.Udp ? 1 : 0, ("camera", Camera), ("transport", "udp"));
    }

    private void RemoveTransportMetric()
    {
        if (_rtsp is null || _transportMetric is null) return;
        _transportMetric.Remove(("camera", Camera), ("transport", "tcp"));
        _transportMetric.Remove(("camera", Camera), ("transport", "udp"));
    }

    private sealed class HeartbeatSink(CameraPipeline owner, IPipelineContext context) : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks)
        {
            var video = tracks.FirstOrDefault(t => t.IsVideo);
            context.SetStatus((video is null
                ? $"playing {string.Join(", ", tracks.Select(t => t.Codec))}"
                : $"playing {video.Width}x{video.Height} {video.Codec}" + (tracks.Count > 1 ? $" +{tracks.Count - 1} track(s)" : ""))
                + (owner.Transport is { } transport ? " over " + transport : ""));
            owner._output.OnTracks(tracks);
        }

        public void OnAccessUnit(in AccessUnit unit)
        {
            Interlocked.Increment(ref owner._frames);
            context.Heartbeat();
            owner._output.OnAccessUnit(unit);
        }
    }
}
