using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Drivers.Cameras;
using Pinhole.Transport.Media;
using Pinhole.Testing;

namespace Pinhole.Drivers.Tests.Cameras;

public class CommandLineTests
{
    [Theory]
    [InlineData("ffmpeg -i x", new[] { "ffmpeg", "-i", "x" })]
    [InlineData("  a   b\tc  ", new[] { "a", "b", "c" })]
    [InlineData("echo 'a b' \"c d\"", new[] { "echo", "a b", "c d" })]
    [InlineData("echo 'it\"s' \"say \\\"hi\\\"\"", new[] { "echo", "it\"s", "say \"hi\"" })]
    [InlineData("echo a\\ b", new[] { "echo", "a b" })]
    [InlineData("echo \"back\\\\slash\" \"keep\\n\"", new[] { "echo", "back\\slash", "keep\\n" })]
    [InlineData("echo '' x", new[] { "echo", "", "x" })]
    [InlineData("echo ab'cd'\"ef\"", new[] { "echo", "abcdef" })]
    [InlineData("echo '$HOME' ; ls", new[] { "echo", "$HOME", ";", "ls" })]
    public void Splits_like_a_shell_without_expansions(string line, string[] expected) =>
        Assert.Equal(expected, CommandLine.Split(line));

    [Theory]
    [InlineData("echo 'open")]
    [InlineData("echo \"open")]
    [InlineData("echo trailing\\")]
    [InlineData("   ")]
    public void Rejects_unbalanced_quotes_and_empty_commands(string line) =>
        Assert.Throws<CameraConfigurationException>(() => CommandLine.Split(line));
}

public class CameraSourceFactoryTests
{
    [Fact]
    public void Rtsp_url_makes_an_rtsp_source_whose_name_has_no_password()
    {
        var s = CameraSource.Create("rtsp://admin:s3cret@192.168.1.64:554/stream1", NullLoggerFactory.Instance);
        Assert.IsType<RtspCameraSource>(s);
        Assert.DoesNotContain("s3cret", s.DisplayName, StringComparison.Ordinal);
        Assert.Contains("192.168.1.64:554/stream1", s.DisplayName, StringComparison.Ordinal);
    }

    [Fact]
    public void Exec_makes_an_exec_source_with_split_arguments()
    {
        var s = Assert.IsType<ExecCameraSource>(CameraSource.Create("exec:rpicam-vid -t 0 --inline --codec h264 -o -", NullLoggerFactory.Instance));
        Assert.Equal(new[] { "rpicam-vid", "-t", "0", "--inline", "--codec", "h264", "-o", "-" }, s.Arguments);
    }

    [Theory]
    [InlineData("http://cam/stream")]
    [InlineData("ftp://user:pw@cam/x")]
    [InlineData("/dev/video0")]
    [InlineData("")]
    [InlineData("exec:")]
    public void Unknown_scheme_or_empty_is_a_configuration_error_without_credentials(string source)
    {
        var e = Assert.Throws<CameraConfigurationException>(() => CameraSource.Create(source, NullLoggerFactory.Instance));
        Assert.DoesNotContain("pw", e.Message, StringComparison.Ordinal);
    }
}

[Trait("Category", "Integration")]
public class ExecCameraSourceTests
{
    private sealed class Sink : IMediaSink
    {
        public readonly List<IReadOnlyList<TrackInfo>> Tracks = [];
        public readonly List<AccessUnit> Units = [];
        public readonly TaskCompletionSource Enough = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Wanted = int.MaxValue;

        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { lock (Units) Tracks.Add(tracks); }

        public void OnAccessUnit(in AccessUnit unit)
        {
            lock (Units)
            {
                Assert.NotEmpty(Tracks); // OnTracks first
                Units.Add(unit);
                if (Units.Count >= Wanted) Enough.TrySetResult();
            }
        }
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Ffmpeg_testsrc_pipe_delivers_H264_access_units_with_monotonic_90kHz_timestamps()
    {
        var source = CameraSource.Create(
            "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=640x360:rate=25 -c:v libx264 -preset ultrafast -g 25 -bf 0 -f h264 -",
            NullLoggerFactory.Instance);
        var sink = new Sink { Wanted = 30 };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var run = source.RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.Enough.Task, run, Task.Delay(TimeSpan.FromSeconds(20)));
        await cts.CancelAsync();
        await run; // returns normally on cancel
        List<AccessUnit> units;
        lock (sink.Units) units = sink.Units.ToList();
        Assert.True(units.Count >= 30, $"only {units.Count} access units");
        var track = Assert.Single(sink.Tracks[0]);
        Assert.Equal(MediaCodec.H264, track.Codec);
        Assert.Equal((640, 360), (track.Width, track.Height));
        Assert.True(units[0].IsKeyframe);
        Assert.Equal(2, units.Take(30).Count(u => u.IsKeyframe)); // -g 25: frames 0 and 25
        for (var i = 1; i < units.Count; i++) Assert.True(units[i].Pts >= units[i - 1].Pts);
        // -re paces at 25 fps: 29 frame intervals should take about 29 * 3600 ticks (loose bounds for a busy machine).
        var span = units[29].Pts - units[0].Pts;
        Assert.InRange(span, 29 * 3600 / 2, 29 * 3600 * 3);
        foreach (var u in units) AssertAvcc(u.Data.Span);
    }

    private static void AssertAvcc(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            var n = BinaryPrimitives.ReadInt32BigEndian(data);
            Assert.InRange(n, 1, data.Length - 4);
            data = data[(4 + n)..];
        }
    }

    [Fact]
    public async Task Process_that_exits_gives_a_clear_exception_quickly()
    {
        var source = CameraSource.Create("exec:/bin/sh -c 'echo boom >&2; exit 3'", NullLoggerFactory.Instance);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new Sink(), CancellationToken.None));
        Assert.Contains("exited with code 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("boom", e.Message, StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Missing_program_gives_a_clear_exception()
    {
        var source = CameraSource.Create("exec:/nonexistent/capture-tool --fast", NullLoggerFactory.Instance);
        var e = await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new Sink(), CancellationToken.None));
        Assert.Contains("cannot start", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancel_kills_the_process()
    {
        // An argument no other test uses: other classes run in parallel and start their own 'sleep 300'.
        var source = (ExecCameraSource)CameraSource.Create("exec:sleep 313", NullLoggerFactory.Instance);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        await source.RunAsync(new Sink(), cts.Token);
        // No 'sleep 313' child of ours may survive.
        var survivors = Process.GetProcessesByName("sleep").Where(p =>
        {
            try { return File.ReadAllText($"/proc/{p.Id}/cmdline") == "sleep\0313\0" && File.ReadAllText($"/proc/{p.Id}/stat").Split(' ')[3] == Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture); }
            catch (IOException) { return false; }
        });
        Assert.Empty(survivors);
    }
}

[Trait("Category", "Integration")]
public class RtspCameraSourceTests
{
    private sealed class Sink : IMediaSink
    {
        public readonly List<IReadOnlyList<TrackInfo>> Tracks = [];
        public readonly List<AccessUnit> Units = [];
        public readonly TaskCompletionSource Enough = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { lock (Units) Tracks.Add(tracks); }

        public void OnAccessUnit(in AccessUnit unit)
        {
            lock (Units)
            {
                Units.Add(unit);
                if (Units.Count >= 25) Enough.TrySetResult();
            }
        }
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task Rtsp_source_with_digest_credentials_delivers_the_same_kind_of_stream_as_exec()
    {
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { User = "u", Password = "p w" });
        var source = CameraSource.Create(cam.UrlWithCredentials.AbsoluteUri, NullLoggerFactory.Instance); // "p%20w" in the URL
        var sink = new Sink();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var run = source.RunAsync(sink, cts.Token);
        await Task.WhenAny(sink.Enough.Task, run, Task.Delay(TimeSpan.FromSeconds(15)));
        await cts.CancelAsync();
        await run;
        lock (sink.Units)
        {
            Assert.True(sink.Units.Count >= 25);
            Assert.Equal((MediaCodec.H264, 640, 360), (sink.Tracks[0][0].Codec, sink.Tracks[0][0].Width, sink.Tracks[0][0].Height));
            Assert.True(sink.Units[0].IsKeyframe);
        }
    }

    [RequiresFact(Needs.RtspCamera)]
    public async Task Auto_transport_remembers_that_UDP_worked_and_tries_it_first_on_the_next_run()
    {
        // GStreamer with protocols=udp answers 461 to a TCP-interleaved SETUP.
        await using var cam = await RtspCamera.StartAsync(new RtspCameraOptions { Protocols = "udp", Width = 320, Height = 240 });
        var logs = new LineLoggerFactory();
        var source = Assert.IsType<RtspCameraSource>(CameraSource.Create(cam.Url.AbsoluteUri, CameraTransport.Auto, logs));
        Assert.Null(source.Transport);

        for (var run = 1; run <= 2; run++)
        {
            // As the supervisor's backoff would: GStreamer answers a DESCRIBE that comes while it still
            // tears down the shared stream of the client that just left with 503.
            if (run == 2) await Task.Delay(TimeSpan.FromSeconds(1));
            var sink = new Sink();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            var running = source.RunAsync(sink, cts.Token);
            await Task.WhenAny(sink.Enough.Task, running, Task.Delay(TimeSpan.FromSeconds(15)));
            await cts.CancelAsync();
            await running;
            lock (sink.Units) Assert.True(sink.Units.Count >= 25, $"run {run}: {sink.Units.Count} units");
            Assert.Equal(Pinhole.Transport.Rtsp.RtspLowerTransport.Udp, source.Transport);
            // The first run paid for one refused TCP SETUP; the second went straight to UDP.
            Assert.Equal(1, logs.Lines.Count(l => l.Contains("SETUP refused: 461", StringComparison.Ordinal) && l.Contains("trying UDP", StringComparison.Ordinal)));
        }
    }

    private sealed class LineLoggerFactory : ILoggerFactory, ILogger
    {
        private readonly List<string> _lines = [];

        public IReadOnlyList<string> Lines { get { lock (_lines) return [.. _lines]; } }

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider) { }

        public void Dispose() { }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lines) _lines.Add(formatter(state, exception));
        }
    }

    [Fact]
    public async Task Unreachable_camera_is_a_CameraException_without_credentials()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        var source = CameraSource.Create($"rtsp://admin:topsecret@127.0.0.1:{port}/x", NullLoggerFactory.Instance);
        var e = await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new Sink(), CancellationToken.None));
        Assert.DoesNotContain("topsecret", e.ToString(), StringComparison.Ordinal);
        Assert.Contains("cannot connect", e.Message, StringComparison.Ordinal);
    }
}

public class ExecStderrTests
{
    private sealed class ListLogger : ILogger<ExecCameraSource>
    {
        public readonly List<string> Lines = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines) Lines.Add(formatter(state, exception));
        }
    }

    [Fact]
    public async Task Stderr_is_logged_rate_limited_and_redacted()
    {
        var logger = new ListLogger();
        var source = new ExecCameraSource(CommandLine.Split("/bin/sh -c 'for i in $(seq 1 200); do echo \"line $i rtsp://u:pw@cam/x\" >&2; done; exit 1'"), logger);
        await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new NullSink(), CancellationToken.None));
        List<string> stderr;
        lock (logger.Lines) stderr = logger.Lines.Where(l => l.Contains(" stderr: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(20, stderr.Count); // 20 lines per 10 s window, the other 180 suppressed
        Assert.All(stderr, l => Assert.DoesNotContain("pw@", l, StringComparison.Ordinal));
        Assert.Contains("rtsp://***@cam/x", stderr[0], StringComparison.Ordinal);
    }

    private sealed class NullSink : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { }
        public void OnAccessUnit(in AccessUnit unit) { }
    }
}

public class ExecOutputTimeoutTests
{
    [Fact]
    public async Task Process_that_writes_nothing_fails_after_the_output_timeout_and_is_killed()
    {
        var source = new ExecCameraSource(["sleep", "300"], NullLogger<ExecCameraSource>.Instance, outputTimeout: TimeSpan.FromSeconds(1));
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<CameraException>(() => source.RunAsync(new NullSink(), CancellationToken.None));
        Assert.Contains("no output for 1 s", e.Message, StringComparison.Ordinal);
        Assert.InRange(sw.Elapsed.TotalSeconds, 0.9, 5);
    }

    private sealed class NullSink : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { }
        public void OnAccessUnit(in AccessUnit unit) { }
    }
}
