using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// CPU and peak RSS of the published edge relaying one 1080p30 ~4 Mbit/s H.264 camera (pull RTSP/TCP,
/// push over the ws uplink to a relay on loopback), beside ffmpeg doing the same pull and a push
/// (<c>ffmpeg -rtsp_transport tcp -i … -c copy -f mpegts tcp://…</c> into a TCP sink that discards).
/// Both run at the same time from the same camera and are measured over the same windows (three,
/// 120 s in all; <c>PINHOLE_BENCH_CPU_SECONDS</c> changes it), so that whatever else this shared
/// machine does weighs on both alike; run one after the other, the same process differed by ±10 %
/// from run to run. CPU is utime+stime from /proc/PID/stat, peak RSS is VmHWM. Target: the edge uses
/// no more CPU than ffmpeg.
/// </summary>
public sealed partial class EdgeCpuBenchmark : IBenchmark
{
    /// <summary>The figures this section replaced and why they moved (kept in the section when it is re-run).</summary>
    private const string PreviousRecord =
        "**Against the previous record** (2026-11-22, commit dea21f1, load not recorded): 1920x1080 camera, edge 0.42 vs ffmpeg 0.49 CPU s/min, edge peak RSS 94.4 MB. This run is at the same size on a quiet machine (load 5 → 4). Both processes use more CPU than then (the edge 43 % more, ffmpeg 29 % more); what this benchmark compares is the ratio measured side by side: edge/ffmpeg 0.86 in all three runs of that commit, 0.95 here (1.03, 0.95 and 0.90 in the three windows), so the edge's share rose by about a tenth, as much as this measurement varies by, and the target (no more than ffmpeg) holds, narrowly. Two runs earlier on 2026-12-03 under load (17–29), where the camera managed only 1280x720, gave 0.95 (0.58 vs 0.61) and 1.10 (0.69 vs 0.63). The edge's peak RSS grew by 23 MB: it now loads ASP.NET Core's cookie authentication, antiforgery, Data Protection and OpenTelemetry, about 13 MB at idle (see edge-startup); the rest was not broken down.";

    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(3);

    // The edge's JIT tiers its hot code up over its first minute or so; a device runs for months, so
    // the comparison is made after that (the warm-up itself is reported beside it).
    private static readonly TimeSpan EdgeWarmup = TimeSpan.FromSeconds(60);

    private const int Windows = 3;

    /// <inheritdoc />
    public string Name => "edge-cpu";

    /// <inheritdoc />
    public string Description => "pinhole-edge CPU s/min and peak RSS relaying 1080p30 4 Mbit/s H.264, beside ffmpeg -c copy doing the same pull and push";

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var run = RunRecord.Start(Name);
        if (Requirements.SkipReason(Needs.RtspCamera | Needs.Ffmpeg) is { } reason) throw new InvalidOperationException(reason);
        var window = Stats.Duration("PINHOLE_BENCH_CPU_SECONDS", TimeSpan.FromSeconds(120));
        var inv = CultureInfo.InvariantCulture;

        // The largest size GStreamer's x264 encodes in real time here (it shares the 2 cores).
        RtspCamera? camera = null;
        var notes = new List<string>();
        double cameraFps = 0, cameraKbps = 0;
        foreach (var (w, h, kbps) in new[] { (1920, 1080, 4000), (1280, 720, 4000), (640, 360, 2000) })
        {
            camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = w, Height = h, Fps = 30, BitrateKbps = kbps, Gop = 30, Pattern = "snow" }, cancellationToken);
            (cameraFps, cameraKbps) = await MeasureFpsAsync(camera.Url, TimeSpan.FromSeconds(6), cancellationToken);
            Console.WriteLine(string.Create(inv, $"  camera {w}x{h}: {cameraFps:0.0} fps, {cameraKbps:0} kbit/s delivered"));
            if (cameraFps >= 27) break;
            notes.Add(string.Create(inv, $"{w}x{h} reached only {cameraFps:0.0} fps here, so a smaller size was used"));
            await camera.DisposeAsync();
            camera = null;
        }
        if (camera is null) throw new InvalidOperationException("GStreamer's x264 could not encode 30 fps in real time even at 640x360 on this machine");

        await using (camera)
        {
            var o = camera.Options;
            await using var path = await VideoPath.StartAsync(camera.Url, cancellationToken);
            await using var sink = TcpSink.Discarding(IPAddress.Loopback, cancellationToken);
            await using var ffmpeg = await PeerProcess.StartAsync(new PeerStartInfo(Tools.Require("ffmpeg"),
                "-hide_banner", "-nostats", "-loglevel", "warning", "-nostdin",
                "-rtsp_transport", "tcp", "-i", camera.Url.ToString(),
                "-c", "copy", "-f", "mpegts", "-progress", "pipe:1", $"tcp://127.0.0.1:{sink.Port}")
            {
                Name = "ffmpeg",
                ReadyLine = FrameLine(),
            }, cancellationToken);
            var edgePid = path.EdgePid;
            var ffmpegPid = ProcessStats.Find(ffmpeg.Id, "ffmpeg", "ffmpeg");

            await Task.Delay(Settle, cancellationToken);
            var warm0 = ProcessStats.CpuSeconds(edgePid);
            var warmClock = Stopwatch.StartNew();
            await Task.Delay(EdgeWarmup - Settle, cancellationToken);
            var warmupCpuPerMinute = (ProcessStats.CpuSeconds(edgePid) - warm0) / warmClock.Elapsed.TotalSeconds * 60;

            var pairs = new List<(double Edge, double Ffmpeg)>();
            var edgeFrames0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_frames_sent_total", cancellationToken);
            var ffmpegFrames0 = LastFrame(ffmpeg.Output);
            var relay0 = ProcessStats.CpuSeconds(path.RelayPid);
            double edgeCpu = 0, ffmpegCpu = 0;
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < Windows; i++)
            {
                var (e0, f0) = (ProcessStats.CpuSeconds(edgePid), ProcessStats.CpuSeconds(ffmpegPid));
                var windowClock = Stopwatch.StartNew();
                await Task.Delay(window / Windows, cancellationToken);
                var (e, f) = (ProcessStats.CpuSeconds(edgePid) - e0, ProcessStats.CpuSeconds(ffmpegPid) - f0);
                var s = windowClock.Elapsed.TotalSeconds;
                pairs.Add((e / s * 60, f / s * 60));
                (edgeCpu, ffmpegCpu) = (edgeCpu + e, ffmpegCpu + f);
                Console.WriteLine(string.Create(inv, $"  window {i + 1}: pinhole-edge {e / s * 60:0.00}, ffmpeg {f / s * 60:0.00} CPU s/min"));
            }
            var seconds = clock.Elapsed.TotalSeconds;
            var relayCpu = ProcessStats.CpuSeconds(path.RelayPid) - relay0;
            await Task.Delay(600, cancellationToken); // -progress reports every 0.5 s
            var edge = new Result(edgeCpu, seconds, ProcessStats.PeakRssMb(edgePid),
                await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_frames_sent_total", cancellationToken) - edgeFrames0);
            var peer = new Result(ffmpegCpu, seconds, ProcessStats.PeakRssMb(ffmpegPid), LastFrame(ffmpeg.Output) - ffmpegFrames0);
            Console.WriteLine(string.Create(inv, $"  pinhole-edge: {edge.CpuPerMinute:0.00} CPU s/min (warm-up {warmupCpuPerMinute:0.00}), peak RSS {edge.PeakRssMb:0.0} MB, {edge.Fps:0.0} fps sent"));
            Console.WriteLine(string.Create(inv, $"  ffmpeg: {peer.CpuPerMinute:0.00} CPU s/min, peak RSS {peer.PeakRssMb:0.0} MB, {peer.Fps:0.0} fps muxed"));
            await ffmpeg.StopAsync();

            var md = new StringBuilder();
            md.Append("## edge-cpu — CPU and memory of the edge relaying one camera\n\n");
            md.Append(run.Line(RunRecord.Tool("GStreamer", "gst-launch-1.0", "--version"), RunRecord.Tool("ffmpeg", "ffmpeg", "-version")));
            md.Append(inv, $"A GStreamer RTSP camera on loopback: H.264 {o.Width}x{o.Height} {o.Fps} fps, {o.BitrateKbps} kbit/s (x264 ultrafast/zerolatency, GOP {o.Gop}; pattern `snow` — random noise — so that x264 really spends the bitrate, a moving ball alone compresses to a few hundred kbit/s); ")
              .Append(inv, $"it delivered {cameraFps:0.0} fps and {cameraKbps:0} kbit/s of H.264 to a test viewer before the runs. ");
            if (notes.Count > 0) md.Append(string.Join("; ", notes)).Append(". ");
            md.Append("**Ours:** the published `pinhole-edge` pulls it (RTSP/TCP) and pushes every access unit over its `ws://` uplink to the published `pinhole-relay` on loopback (no viewers). ")
              .Append("**Peer:** `ffmpeg -rtsp_transport tcp -i rtsp://… -c copy -f mpegts tcp://127.0.0.1:PORT`, pushing into a TCP sink in the benchmark process that reads and discards. ")
              .Append(inv, $"Both pull the camera at the same time and are measured over the same {Windows} windows ({seconds:0} s in all), starting {EdgeWarmup.TotalSeconds:0} s after they started (the edge's JIT tiers up hot code over its first minute; that warm-up is reported below): ")
              .Append("measured one after the other, the same process varied by about ±10 % from run to run on this shared machine, more than the difference being measured, while side by side both see the same conditions. ")
              .Append("CPU is utime+stime from `/proc/PID/stat`, scaled to one minute; peak RSS is `VmHWM` from `/proc/PID/status` (over the process's life, start-up included).\n\n");
            md.Append("| process | CPU s per minute | share of one core | peak RSS | frames pushed per s |\n|---|---|---|---|---|\n");
            Row(md, "pinhole-edge (pull RTSP + push ws uplink)", edge);
            Row(md, "peer: ffmpeg -c copy -f mpegts tcp://", peer);
            md.Append("\nPer window (CPU s/min, edge / ffmpeg): ")
              .Append(string.Join(", ", pairs.Select(p => string.Create(inv, $"{p.Edge:0.00} / {p.Ffmpeg:0.00}"))))
              .Append(". ");
            md.Append(inv, $"During its warm-up ({Settle.TotalSeconds:0}–{EdgeWarmup.TotalSeconds:0} s after start) the edge used {warmupCpuPerMinute:0.00} CPU s/min. ")
              .Append(inv, $"For scale, the relay receiving the uplink used {relayCpu / seconds * 60:0.00} CPU s/min over the windows (not part of the comparison). ")
              .Append("Target: the edge uses no more CPU than ffmpeg. ")
              .Append("ffmpeg is native code while pinhole-edge is a .NET app with a web page, supervisor and metrics besides the camera, so its RSS floor is higher. ")
              .Append(Stats.Noise).Append('\n');
            md.Append('\n').Append(PreviousRecord).Append('\n');
            return md.ToString();
        }
    }

    private sealed record Result(double Cpu, double Seconds, double PeakRssMb, double Frames)
    {
        public double CpuPerMinute => Cpu / Seconds * 60;

        public double Fps => Frames / Seconds;
    }

    private static void Row(StringBuilder md, string what, Result r) =>
        md.Append(CultureInfo.InvariantCulture, $"| {what} | {r.CpuPerMinute:0.00} s | {r.CpuPerMinute / 60 * 100:0.0} % | {r.PeakRssMb:0.0} MB | {r.Fps:0.0} |\n");

    private static async Task<(double Fps, double Kbps)> MeasureFpsAsync(Uri url, TimeSpan time, CancellationToken cancellationToken)
    {
        var recorder = new ArrivalRecorder();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var run = ArrivalRecorder.RunAsync(url, recorder, cts.Token);
        await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
        var start = recorder.Snapshot().Count;
        await Task.Delay(time, cancellationToken);
        var window = recorder.Snapshot().Skip(start).ToList();
        await cts.CancelAsync();
        await run;
        return (window.Count / time.TotalSeconds, window.Sum(a => (double)a.Size) * 8 / 1000 / time.TotalSeconds);
    }

    private static double LastFrame(string output) =>
        FrameLine().Matches(output) is { Count: > 0 } m ? double.Parse(m[^1].Groups[1].Value, CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"^frame=(\d+)", RegexOptions.Multiline)]
    private static partial Regex FrameLine();
}
