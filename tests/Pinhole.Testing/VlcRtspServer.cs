using System.Globalization;

namespace Pinhole.Testing;

/// <summary>
/// VLC's RTSP output as a camera (<c>cvlc FILE --sout '#rtp{sdp=rtsp://127.0.0.1:PORT/cam}'</c>):
/// the UDP-only server that answers 461 to a TCP-interleaved SETUP. It plays an H.264 clip made with
/// ffmpeg once, in real time from its start (a broadcast: a client joins the running stream), then
/// says RTCP BYE and stops sending; <c>--sout-keep</c> keeps the RTSP server up after that. VLC
/// refuses to run as root, so as root it runs as <c>nobody</c> (runuser).
/// </summary>
public sealed class VlcRtspServer : IAsyncDisposable
{
    private static readonly Lazy<string?> LazySkipReason = new(() =>
        Tools.SkipReason("cvlc", "ffmpeg") is { } missing
            ? missing.Replace("build.sh installs it", "build.sh installs vlc-bin vlc-plugin-base and ffmpeg", StringComparison.Ordinal)
            : Tools.IsRoot && !Tools.Exists("runuser") ? "needs runuser to run VLC as nobody (VLC refuses root)" : null);

    private readonly string _directory;
    private PeerProcess? _process;

    private VlcRtspServer(string directory, int port)
    {
        _directory = directory;
        Port = port;
    }

    /// <summary>Null when VLC can run here, otherwise the skip reason.</summary>
    public static string? SkipReason => LazySkipReason.Value;

    /// <summary>The RTSP port (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary><c>rtsp://127.0.0.1:PORT/cam</c>.</summary>
    public Uri Url => new($"rtsp://127.0.0.1:{Port}/cam");

    /// <summary>VLC's latest output, for diagnosis.</summary>
    public string Log => _process?.Output ?? "";

    /// <summary>
    /// Makes a <paramref name="clip"/> long 320x240 25 fps H.264 clip (a keyframe a second) and starts
    /// VLC serving it; returns once the RTSP port accepts connections. The clip starts playing then.
    /// </summary>
    public static async Task<VlcRtspServer> StartAsync(TimeSpan clip, CancellationToken cancellationToken = default)
    {
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("VLC's RTSP test server runs on Linux");
        // World-readable: VLC runs as nobody.
        var directory = Directory.CreateTempSubdirectory("pinhole-vlc-").FullName;
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
            UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var file = Path.Combine(directory, "clip.mp4");
        var seconds = clip.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
        var made = await Command.RunAsync(Tools.Require("ffmpeg"),
            ["-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", seconds,
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p", file],
            TimeSpan.FromSeconds(60), cancellationToken);
        if (!made.Succeeded) throw new InvalidOperationException("ffmpeg could not make the clip: " + made.StandardError);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var server = new VlcRtspServer(directory, FreePort.GetTcpAndUdp());
        string[] vlc = [Tools.Require("cvlc"), "-I", "dummy", "--no-audio", file, "--sout-keep",
            "--sout", $"#rtp{{sdp=rtsp://127.0.0.1:{server.Port}/cam}}"];
        var info = Tools.IsRoot
            ? new PeerStartInfo(Tools.Require("runuser"), ["-u", "nobody", "--", .. vlc])
            : new PeerStartInfo(vlc[0], vlc[1..]);
        try
        {
            server._process = await PeerProcess.StartAsync(info with
            {
                Name = "vlc-rtsp",
                ReadyTcpPort = server.Port,
                ReadyTimeout = TimeSpan.FromSeconds(20),
            }, cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Kills VLC and deletes the clip.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is not null) await _process.DisposeAsync();
        _process = null;
        ScratchDirectory.TryDelete(_directory);
    }
}
