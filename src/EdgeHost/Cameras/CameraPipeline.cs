using Microsoft.Extensions.Logging;
using Pinhole.Drivers.Cameras;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Transport.Media;

namespace Pinhole.EdgeHost.Cameras;

/// <summary>
/// Runs one camera source into its uplink sink as the pipeline <c>camera/NAME</c>. Every frame is a
/// heartbeat, so a camera that stops delivering for <see cref="StallTimeout"/> is restarted by the
/// supervisor even when its source hangs without failing.
/// </summary>
public sealed class CameraPipeline : IPipeline
{
    private readonly Func<IMediaSink, CancellationToken, Task> _runSource;
    private readonly IMediaSink _output;

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

    /// <summary>The pipeline for a camera from edge.json: its <see cref="CameraSource"/> into the uplink's sink for it.</summary>
    /// <exception cref="CameraConfigurationException">The source string is not <c>rtsp://…</c> or <c>exec:…</c>.</exception>
    public static CameraPipeline Create(CameraConfig camera, UplinkClient uplink, ILoggerFactory loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(camera);
        ArgumentNullException.ThrowIfNull(uplink);
        var source = CameraSource.Create(camera.Source, loggerFactory);
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
        }, uplink.GetSink(name));
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
        await _runSource(new HeartbeatSink(this, context), cancellationToken);
        // Returning is a failure for the supervisor (it restarts us); say why in the status.
        if (!cancellationToken.IsCancellationRequested) context.SetStatus("source ended");
    }

    private sealed class HeartbeatSink(CameraPipeline owner, IPipelineContext context) : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks)
        {
            var video = tracks.FirstOrDefault(t => t.IsVideo);
            context.SetStatus(video is null
                ? $"playing {string.Join(", ", tracks.Select(t => t.Codec))}"
                : $"playing {video.Width}x{video.Height} {video.Codec}" + (tracks.Count > 1 ? $" +{tracks.Count - 1} track(s)" : ""));
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
