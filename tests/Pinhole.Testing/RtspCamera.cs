using System.Globalization;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>The video codec the test camera encodes.</summary>
public enum CameraVideo
{
    /// <summary>H.264 constrained baseline (x264, no B-frames, one slice per frame).</summary>
    H264,

    /// <summary>H.265 main (x265).</summary>
    H265,

    /// <summary>No video track (audio only).</summary>
    None,
}

/// <summary>The audio codec the test camera encodes (a 440 Hz sine).</summary>
public enum CameraAudio
{
    /// <summary>No audio track.</summary>
    None,

    /// <summary>AAC-LC, 48 kHz mono, RTP MPEG4-GENERIC (RFC 3640).</summary>
    Aac,

    /// <summary>G.711 A-law, 8 kHz mono, payload type 8.</summary>
    Pcma,

    /// <summary>G.711 µ-law, 8 kHz mono, payload type 0.</summary>
    Pcmu,
}

/// <summary>What the test camera serves.</summary>
public sealed record RtspCameraOptions
{
    /// <summary>The video codec (H.264 unless set).</summary>
    public CameraVideo Video { get; init; } = CameraVideo.H264;

    /// <summary>The audio codec (none unless set).</summary>
    public CameraAudio Audio { get; init; } = CameraAudio.None;

    /// <summary>Frame width in pixels.</summary>
    public int Width { get; init; } = 640;

    /// <summary>Frame height in pixels.</summary>
    public int Height { get; init; } = 360;

    /// <summary>Frames per second.</summary>
    public int Fps { get; init; } = 25;

    /// <summary>Keyframe interval in frames; 0 means one keyframe per second.</summary>
    public int Gop { get; init; }

    /// <summary>Video bitrate in kbit/s.</summary>
    public int BitrateKbps { get; init; } = 800;

    /// <summary>The path served, starting with '/'.</summary>
    public string Path { get; init; } = "/cam";

    /// <summary>videotestsrc pattern ("ball" moves, so every frame differs).</summary>
    public string Pattern { get; init; } = "ball";

    /// <summary>Lower transports the camera offers: "any" (default), "tcp", or "udp" (answers 461 to a TCP-interleaved SETUP, like VLC's server and many cheap cameras).</summary>
    public string Protocols { get; init; } = "any";

    /// <summary>H.264 slices per picture (x264 slices=N); 1 by default.</summary>
    public int Slices { get; init; } = 1;

    /// <summary>H.264: set the RTP marker after every slice, not only after the last of a picture, as live555ProxyServer does.</summary>
    public bool MarkSlices { get; init; }

    /// <summary>H.264 B-frames between reference frames (x264 bframes=N, main profile); 0 by default.</summary>
    public int BFrames { get; init; }

    /// <summary>When set (with <see cref="Password"/>), the camera demands RTSP Digest authentication.</summary>
    public string? User { get; init; }

    /// <summary>The password for <see cref="User"/>.</summary>
    public string? Password { get; init; }

    /// <summary>How long the camera may take to start listening.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Run the camera inside this network namespace (e.g. <see cref="NatTopology.Lan"/>); null runs it in the test's own.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>The address the camera listens on: 127.0.0.1 unless set (inside a namespace, its own address such as <see cref="NatTopology.LanAddress"/>).</summary>
    public string BindAddress { get; init; } = "127.0.0.1";
}

/// <summary>
/// A live RTSP camera for tests: peers/rtsp-camera.py (GStreamer's RTSP server, a moving test
/// pattern) on a free 127.0.0.1 port. <see cref="Kill"/> and <see cref="StartAgainAsync"/> let a
/// test take the camera away and bring it back on the same URL.
/// </summary>
public sealed class RtspCamera : IAsyncDisposable
{
    /// <summary>Debian's python, which has python3-gi (a pyenv python on PATH does not).</summary>
    public const string Python = "/usr/bin/python3";

    private static readonly Regex ReadyLine = new(@"^READY port=(\d+)", RegexOptions.CultureInvariant);
    private static readonly Lazy<string?> LazySkipReason = new(ComputeSkipReason);
    private PeerProcess? _process;

    private RtspCamera(RtspCameraOptions options) => Options = options;

    /// <summary>Null when the camera can run here, otherwise the skip reason.</summary>
    public static string? SkipReason => LazySkipReason.Value;

    /// <summary>The options the camera runs with.</summary>
    public RtspCameraOptions Options { get; }

    /// <summary>The TCP port the camera listens on (kept across <see cref="StartAgainAsync"/>).</summary>
    public int Port { get; private set; }

    /// <summary><c>rtsp://ADDRESS:PORT/PATH</c>, without credentials.</summary>
    public Uri Url => new($"rtsp://{Options.BindAddress}:{Port}{Options.Path}");

    /// <summary><c>rtsp://USER:PASSWORD@ADDRESS:PORT/PATH</c> (the same as <see cref="Url"/> when no user is set).</summary>
    public Uri UrlWithCredentials => Options.User is null
        ? Url
        : new($"rtsp://{Uri.EscapeDataString(Options.User)}:{Uri.EscapeDataString(Options.Password ?? "")}@{Options.BindAddress}:{Port}{Options.Path}");

    /// <summary>The URL with other credentials (e.g. a wrong password).</summary>
    public Uri UrlWith(string user, string password) =>
        new($"rtsp://{Uri.EscapeDataString(user)}:{Uri.EscapeDataString(password)}@{Options.BindAddress}:{Port}{Options.Path}");

    /// <summary>True while the camera process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The camera's latest output, for diagnosis.</summary>
    public string Log => _process?.Output ?? "";

    /// <summary>Starts a camera and waits until it listens.</summary>
    public static async Task<RtspCamera> StartAsync(RtspCameraOptions? options = null, CancellationToken cancellationToken = default)
    {
        var camera = new RtspCamera(options ?? new RtspCameraOptions());
        try
        {
            await camera.StartProcessAsync(0, cancellationToken);
            return camera;
        }
        catch
        {
            await camera.DisposeAsync();
            throw;
        }
    }

    /// <summary>Kills the camera at once (as if it lost power); clients see their connection drop.</summary>
    public void Kill()
    {
        _process?.Dispose();
        _process = null;
    }

    /// <summary>Stops the camera gracefully (SIGTERM).</summary>
    public async Task StopAsync()
    {
        if (_process is null)
            return;
        await _process.StopAsync();
        await _process.DisposeAsync();
        _process = null;
    }

    /// <summary>Starts the camera again on the same port and path.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
            throw new InvalidOperationException("the camera is still running; Kill or StopAsync it first");
        _process?.Dispose();
        _process = null;
        await StartProcessAsync(Port, cancellationToken);
    }

    /// <summary>Kills the camera.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
            await _process.DisposeAsync();
        _process = null;
    }

    /// <inheritdoc />
    public override string ToString() => $"rtsp camera {Url} ({Options.Video}/{Options.Audio})";

    private async Task StartProcessAsync(int port, CancellationToken cancellationToken)
    {
        var o = Options;
        var args = new List<string>
        {
            System.IO.Path.Combine(RepoPaths.Peers, "rtsp-camera.py"),
            "--port", port.ToString(CultureInfo.InvariantCulture),
            "--address", o.BindAddress,
            "--path", o.Path,
            "--codec", o.Video.ToString().ToLowerInvariant(),
            "--audio", o.Audio.ToString().ToLowerInvariant(),
            "--width", o.Width.ToString(CultureInfo.InvariantCulture),
            "--height", o.Height.ToString(CultureInfo.InvariantCulture),
            "--fps", o.Fps.ToString(CultureInfo.InvariantCulture),
            "--gop", o.Gop.ToString(CultureInfo.InvariantCulture),
            "--bitrate", o.BitrateKbps.ToString(CultureInfo.InvariantCulture),
            "--pattern", o.Pattern,
            "--protocols", o.Protocols,
            "--slices", o.Slices.ToString(CultureInfo.InvariantCulture),
            "--bframes", o.BFrames.ToString(CultureInfo.InvariantCulture),
        };
        if (o.MarkSlices)
            args.Add("--mark-slices");
        if (o.User is not null)
            args.AddRange(["--user", o.User, "--password", o.Password ?? ""]);
        // Port 0 the first time: the camera binds itself and reports the port, so there is no race.
        var info = new PeerStartInfo(Python, args)
        {
            Name = $"rtsp-camera{o.Path}" + (o.NetworkNamespace is null ? "" : "@" + o.NetworkNamespace),
            NetworkNamespace = o.NetworkNamespace,
            ReadyLine = ReadyLine,
            ReadyTimeout = o.StartTimeout,
        };
        var process = await PeerProcess.StartAsync(info, cancellationToken);
        Port = int.Parse(process.ReadyMatch!.Groups[1].Value, CultureInfo.InvariantCulture);
        _process = process;
    }

    private static string? ComputeSkipReason()
    {
        if (!File.Exists(Python))
            return $"needs {Python} with python3-gi (Debian's python3; build.sh installs it as root)";
        try
        {
            var check = Command.RunAsync(Python, ["-c",
                "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0'); from gi.repository import Gst, GstRtspServer; Gst.init(None); " +
                "import sys; missing=[e for e in ('videotestsrc','x264enc','x265enc','rtph264pay','rtph265pay','voaacenc','alawenc','mulawenc') if Gst.ElementFactory.find(e) is None]; " +
                "print(' '.join(missing)); sys.exit(1 if missing else 0)"], TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
            return check.Succeeded
                ? null
                : $"the GStreamer RTSP test camera cannot run (missing: {check.StandardOutput.Trim()} {check.StandardError.Trim()}); build.sh installs python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins";
        }
        catch (InvalidOperationException e)
        {
            return "the GStreamer RTSP test camera cannot run: " + e.Message;
        }
    }
}
