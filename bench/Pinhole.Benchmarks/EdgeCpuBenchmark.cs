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
/// Both run one after the other against the same camera, each for 60 s
/// (<c>PINHOLE_BENCH_CPU_SECONDS</c> shortens it); CPU is utime+stime from /proc/PID/stat over the
/// window, peak RSS is VmHWM. Target: the edge uses no more CPU than ffmpeg.
/// </summary>
public sealed partial class EdgeCpuBenchmark : IBenchmark
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(3);

    // The edge's JIT tiers its hot code up over its first half minute or so; a device runs for months,
    // so the comparison is made after that (the warm-up itself is reported beside it).
    private static readonly TimeSpan EdgeWarmup = TimeSpan.FromSeconds(30);

    /// <inheritdoc />
    public string Name => "edge-cpu";

    /// <inheritdoc />
    public string Description => "pinhole-edge CPU s/min and peak RSS relaying 1080p30 4 Mbit/s H.264, beside ffmpeg -c copy doing the same pull and push";

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        if (Requirements.SkipReason(Needs.RtspCamera | Needs.Ffmpeg) is { } reason) throw new InvalidOperationException(reason);
        var window = Stats.Duration("PINHOLE_BENCH_CPU_SECONDS", TimeSpan.FromSeconds(60));
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
            Result edge, ffmpeg;
            double relayCpu, warmupCpuPerMinute;
            await using (var path = await VideoPath.StartAsync(camera.Url, cancellationToken))
            {
                await Task.Delay(Settle, cancellationToken);
                var pid = path.EdgePid;
                var relayPid = path.RelayPid;
                var warm0 = ProcessStats.CpuSeconds(pid);
                var warmClock = Stopwatch.StartNew();
                await Task.Delay(EdgeWarmup - Settle, cancellationToken);
                warmupCpuPerMinute = (ProcessStats.CpuSeconds(pid) - warm0) / warmClock.Elapsed.TotalSeconds * 60;
                var frames0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_frames_sent_total", cancellationToken);
                var cpu0 = ProcessStats.CpuSeconds(pid);
                var relay0 = ProcessStats.CpuSeconds(relayPid);
                var clock = Stopwatch.StartNew();
                await Task.Delay(window, cancellationToken);
                var cpu = ProcessStats.CpuSeconds(pid) - cpu0;
                var seconds = clock.Elapsed.TotalSeconds;
                relayCpu = ProcessStats.CpuSeconds(relayPid) - relay0;
                var frames = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_frames_sent_total", cancellationToken) - frames0;
                edge = new Result(cpu, seconds, ProcessStats.PeakRssMb(pid), frames);
            }
            Console.WriteLine(string.Create(inv, $"  pinhole-edge: {edge.CpuPerMinute:0.00} CPU s/min (warm-up {warmupCpuPerMinute:0.00}), peak RSS {edge.PeakRssMb:0.0} MB, {edge.Fps:0.0} fps sent"));

            ffmpeg = await RunFfmpegAsync(camera.Url, window, cancellationToken);
            Console.WriteLine(string.Create(inv, $"  ffmpeg: {ffmpeg.CpuPerMinute:0.00} CPU s/min, peak RSS {ffmpeg.PeakRssMb:0.0} MB, {ffmpeg.Fps:0.0} fps muxed"));

            var md = new StringBuilder();
            md.Append("## edge-cpu — CPU and memory of the edge relaying one camera\n\n");
            md.Append(inv, $"A GStreamer RTSP camera on loopback: H.264 {o.Width}x{o.Height} {o.Fps} fps, {o.BitrateKbps} kbit/s (x264 ultrafast/zerolatency, GOP {o.Gop}; pattern `snow` — random noise — so that x264 really spends the bitrate, a moving ball alone compresses to a few hundred kbit/s); ")
              .Append(inv, $"it delivered {cameraFps:0.0} fps and {cameraKbps:0} kbit/s of H.264 to a test viewer before the runs. ");
            if (notes.Count > 0) md.Append(string.Join("; ", notes)).Append(". ");
            md.Append("**Ours:** the published `pinhole-edge` pulls it (RTSP/TCP) and pushes every access unit over its `ws://` uplink to the published `pinhole-relay` on loopback (no viewers). ")
              .Append("**Peer:** `ffmpeg -rtsp_transport tcp -i rtsp://… -c copy -f mpegts tcp://127.0.0.1:PORT`, pushing into a TCP sink in the benchmark process that reads and discards. ")
              .Append(inv, $"They run one after the other, each for {window.TotalSeconds:0} s: the edge after {EdgeWarmup.TotalSeconds:0} s (its JIT tiers up hot code over the first half minute; the warm-up is reported below), ffmpeg after {Settle.TotalSeconds:0} s; CPU is utime+stime from `/proc/PID/stat` over the window, scaled to one minute; ")
              .Append("peak RSS is `VmHWM` from `/proc/PID/status` (over the process's life, start-up included).\n\n");
            md.Append("| process | CPU s per minute | share of one core | peak RSS | frames pushed per s |\n|---|---|---|---|---|\n");
            Row(md, "pinhole-edge (pull RTSP + push ws uplink)", edge);
            Row(md, "peer: ffmpeg -c copy -f mpegts tcp://", ffmpeg);
            md.Append(inv, $"\nDuring its warm-up ({Settle.TotalSeconds:0}–{EdgeWarmup.TotalSeconds:0} s after start) the edge used {warmupCpuPerMinute:0.00} CPU s/min. ")
              .Append(inv, $"For scale, the relay receiving the uplink used {relayCpu / edge.Seconds * 60:0.00} CPU s/min in the edge's window (not part of the comparison). ")
              .Append("Target: the edge uses no more CPU than ffmpeg. ")
              .Append("ffmpeg is native code while pinhole-edge is a .NET app with a web page, supervisor and metrics besides the camera, so its RSS floor is higher. ")
              .Append(Stats.Noise).Append('\n');
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

    private static async Task<Result> RunFfmpegAsync(Uri camera, TimeSpan window, CancellationToken cancellationToken)
    {
        await using var sink = new DiscardingTcpSink(IPAddress.Loopback, cancellationToken);
        var port = sink.Port;

        await using var ffmpeg = await PeerProcess.StartAsync(new PeerStartInfo(Tools.Require("ffmpeg"),
            "-hide_banner", "-nostats", "-loglevel", "warning", "-nostdin",
            "-rtsp_transport", "tcp", "-i", camera.ToString(),
            "-c", "copy", "-f", "mpegts", "-progress", "pipe:1", $"tcp://127.0.0.1:{port}")
        {
            Name = "ffmpeg",
            ReadyLine = FrameLine(),
        }, cancellationToken);
        try
        {
            await Task.Delay(Settle, cancellationToken);
            var pid = ProcessStats.Find(ffmpeg.Id, "ffmpeg", "ffmpeg");
            var frames0 = LastFrame(ffmpeg.Output);
            var cpu0 = ProcessStats.CpuSeconds(pid);
            var clock = Stopwatch.StartNew();
            await Task.Delay(window, cancellationToken);
            var cpu = ProcessStats.CpuSeconds(pid) - cpu0;
            var seconds = clock.Elapsed.TotalSeconds;
            var peak = ProcessStats.PeakRssMb(pid);
            await Task.Delay(600, cancellationToken); // -progress reports every 0.5 s
            var frames = LastFrame(ffmpeg.Output) - frames0;
            return new Result(cpu, seconds, peak, frames);
        }
        finally
        {
            await ffmpeg.StopAsync();
        }
    }

    private static double LastFrame(string output) =>
        FrameLine().Matches(output) is { Count: > 0 } m ? double.Parse(m[^1].Groups[1].Value, CultureInfo.InvariantCulture) : 0;

    [GeneratedRegex(@"^frame=(\d+)", RegexOptions.Multiline)]
    private static partial Regex FrameLine();
}
