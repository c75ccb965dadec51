using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.Testing;
using System.Diagnostics.Metrics;

namespace Pinhole.Benchmarks;

/// <summary>
/// Start-up time of the edge host to READY=1 (measured the way systemd sees it: process start to the
/// datagram on NOTIFY_SOCKET) and steady-state RSS with one camera and two sensors: pinhole-edge with a real GStreamer RTSP camera streaming through its uplink to a published relay,
/// and, to show the host's own cost, the same host with stand-in pipelines through the factory seam
/// (a 25 fps camera pushing 40 KB frames, two file sensors). Beside them: the bare runtime start
/// (<c>pinhole-edge --version</c>).
/// Targets (x64): READY under 1.5 s, RSS under 80 MB.
/// </summary>
public sealed class EdgeStartupBenchmark : IBenchmark
{
    /// <summary>The figures this section replaced and why they moved (kept in the section when it is re-run).</summary>
    private const string PreviousRecord =
        "**Against the previous record** (2026-11-21, commit 29d83fb, load not recorded): READY 318 ms with the real pipelines and 323 ms with stand-ins, RSS 78.0 and 57.9 MB, runtime floor 40 ms. The start-up times move with the load, as the runtime floor shows (it runs no Pinhole code): 330 and 561 ms in two runs on 2026-12-03 at load 33–37 and 18–24 (READY 1716 and 2690 ms), 82 ms in this run at load 4. Part of it is the code: that commit's edge, published and started beside today's with the same config (a camera and relay it cannot reach, the two file sensors), five times each in turn at load about 25, reached READY in a median 1421 ms against 1940 ms. The RSS does not move with the load (90.4, 90.8 and 90.5 MB in the three runs) and grew with the code: in the same side-by-side test the old edge held 78.1 MB after 10 s and today's 90.8 MB. Today's maps 28 assemblies the old one did not (7.9 MB: ASP.NET Core's cookie authentication, antiforgery and Data Protection, with System.Private.Xml and System.Private.Xml.Linq, 3.3 MB, which Data Protection's XML key ring uses; OpenTelemetry; System.CommandLine; System.Device.Gpio) and has 7 MB more heap and 1.7 MB more JIT-compiled code. So the RSS target of 80 MB is now missed. What the 90 MB is: read from /proc for the published edge (framework-dependent, the same config, after 8 s), 17 MB of it is anonymous memory (GC heap, native allocations, stacks), 61 MB is file-backed: clean pages of the runtime and the assemblies (System.Private.CoreLib 13 MB, libcoreclr 6 MB, the JIT 4.5 MB, OpenSSL 3.5 MB, System.Private.Xml 2.9 MB) that the kernel can drop and re-read, and 12 MB is shared memory: the runtime's W^X double mapping of JIT-compiled code. `DOTNET_GCgen0size=0x400000` saved 0.8 MB and `DOTNET_GCConserveMemory=5` nothing; `DOTNET_EnableWriteXorExecute=0` would remove the double mapping but gives up a hardening, so it is not set. The 80 MB target stays as it was, missed by about 11 MB.";

    private const int Runs = 5;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    public string Name => "edge-startup";

    public string Description => "pinhole-edge start-up to READY=1 and steady RSS (1 camera, 2 sensors) beside the bare runtime start";

    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var run = RunRecord.Start(Name);
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-edge-").FullName;
        try
        {
            var sensorFile = Path.Combine(dir, "temp");
            await File.WriteAllTextAsync(sensorFile, "21500\n", cancellationToken);

            // The real case: a GStreamer camera on loopback and a published relay the edge connects to.
            var relayDll = Path.Combine(RepoPaths.Root, "out", "relay", "pinhole-relay.dll");
            if (!File.Exists(relayDll))
                throw new InvalidOperationException($"{relayDll} is missing: run ./build.sh first (./build.sh bench does)");
            await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 640, Height = 360, Fps = 25, BitrateKbps = 800 }, cancellationToken);
            var httpPort = FreePort.GetTcp();
            var relayConfig = Path.Combine(dir, "relay.json");
            await File.WriteAllTextAsync(relayConfig, $$"""
                {
                  "http": "http://127.0.0.1:{{httpPort}}",
                  "rtsp": "127.0.0.1:{{FreePort.GetTcp()}}",
                  "dataDir": "{{dir}}/relay",
                  "devices": [ { "id": "bench", "token": "a-long-random-secret" } ],
                  "metrics": { "public": true }
                }
                """, cancellationToken);
            await using var relay = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", relayDll, "--config", relayConfig)
            {
                Name = "pinhole-relay",
                ReadyTcpPort = httpPort,
            }, cancellationToken);

            string EdgeConfig(string relayUrl, string cameraUrl) => $$"""
                {
                  "deviceId": "bench",
                  "token": "a-long-random-secret",
                  "relays": [ "{{relayUrl}}" ],
                  "cameras": [ { "name": "cam", "source": "{{cameraUrl}}" } ],
                  "sensors": [
                    { "name": "t1", "kind": "file", "path": "{{sensorFile}}", "scale": 0.001, "interval": "1s" },
                    { "name": "t2", "kind": "file", "path": "{{sensorFile}}", "scale": 0.001, "interval": "1s" }
                  ],
                  "web": { "listen": "http://127.0.0.1:0", "password": "bench" },
                  "dataDir": "{{dir}}/data"
                }
                """;
            var standInConfig = Path.Combine(dir, "edge-standin.json");
            await File.WriteAllTextAsync(standInConfig, EdgeConfig("ws://127.0.0.1:1/uplink", "rtsp://127.0.0.1:1/cam"), cancellationToken);
            var realConfig = Path.Combine(dir, "edge.json");
            await File.WriteAllTextAsync(realConfig, EdgeConfig($"ws://127.0.0.1:{httpPort}/uplink", camera.Url.ToString()), cancellationToken);

            var bench = Path.Combine(AppContext.BaseDirectory, "Pinhole.Benchmarks.dll");
            var edge = Path.Combine(AppContext.BaseDirectory, "pinhole-edge.dll");

            var floor = new List<double>();
            for (var i = 0; i < Runs; i++)
                floor.Add(await TimeToExitAsync(edge, ["--version"], cancellationToken));

            var real = new List<Sample>();
            var standIn = new List<Sample>();
            for (var i = 0; i < Runs; i++)
            {
                real.Add(await StartAsync(edge, ["--config", realConfig], measureRss: i == Runs - 1, cancellationToken));
                standIn.Add(await StartAsync(bench, ["edge-child", "--config", standInConfig], measureRss: i == Runs - 1, cancellationToken));
            }

            // The real runs only count if video really went through: ask the relay what it received.
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{httpPort}/metrics"), cancellationToken);
            // The exporter writes the labels in an order of its own (OpenTelemetry's sorts them), so
            // the series is found by its labels, not by the text of one order.
            var framesLines = metrics.Split('\n')
                .Where(l => l.StartsWith("pinhole_relay_stream_frames_total{", StringComparison.Ordinal)).ToList();
            var framesLine = framesLines.FirstOrDefault(l =>
                l.Contains("device=\"bench\"", StringComparison.Ordinal) && l.Contains("camera=\"cam\"", StringComparison.Ordinal));
            var relayFrames = framesLine is null ? 0 : long.Parse(framesLine[(framesLine.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            if (relayFrames == 0)
                throw new InvalidOperationException("the relay received no frames from the edge during the real runs; the figures would not mean anything "
                    + $"(its pinhole_relay_stream_frames_total series: {(framesLines.Count == 0 ? "none" : string.Join("; ", framesLines))})");

            var sb = new StringBuilder();
            sb.Append("## edge-startup\n\n");
            sb.Append(run.Line(RunRecord.Tool("GStreamer", "gst-launch-1.0", "--version")));
            sb.Append(CultureInfo.InvariantCulture, $"Median of {Runs} cold starts each, process start to `READY=1` on `NOTIFY_SOCKET`; RSS after {Settle.TotalSeconds:0} s steady. ");
            sb.Append("The real case runs `pinhole-edge` with a GStreamer RTSP camera (H.264 640x360 25 fps, 800 kbit/s) streaming through its uplink to a published `pinhole-relay` on loopback, plus two file sensors; the stand-in case is the same host with fake camera and sensor pipelines, to show the host's own cost.\n\n");
            sb.Append("| what | start (median, min–max) | RSS steady | RSS peak | exit after SIGTERM |\n|---|---|---|---|---|\n");
            sb.Append(CultureInfo.InvariantCulture, $"| runtime floor: `pinhole-edge --version` (start to exit) | {Median(floor):0} ms ({floor.Min():0}–{floor.Max():0}) | | | |\n");
            Row(sb, "pinhole-edge + 1 RTSP camera streaming to a relay + 2 file sensors (real pipelines)", real);
            sb.Append(CultureInfo.InvariantCulture, $"| (the relay received {relayFrames} frames from these {Runs} runs) | | | | |\n");
            Row(sb, "pinhole-edge host + 1 camera + 2 sensors (stand-in pipelines)", standIn);
            sb.Append(CultureInfo.InvariantCulture, $"\nTargets on x64: READY under 1500 ms, RSS under 80 MB. Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSArchitecture}, .NET {Environment.Version}.\n");
            sb.Append('\n').Append(PreviousRecord).Append('\n');
            return sb.ToString();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void Row(StringBuilder sb, string what, List<Sample> samples)
    {
        var ready = samples.Select(s => s.ReadyMs).ToList();
        var last = samples[^1];
        sb.Append(CultureInfo.InvariantCulture,
            $"| {what} | {Median(ready):0} ms ({ready.Min():0}–{ready.Max():0}) | {last.RssMb:0.0} MB | {last.PeakRssMb:0.0} MB | {Median(samples.Select(s => s.StopMs).ToList()):0} ms |\n");
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private sealed record Sample(double ReadyMs, double RssMb, double PeakRssMb, double StopMs);

    private static ProcessStartInfo Info(string dll, string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("JOURNAL_STREAM");
        info.Environment.Remove("WATCHDOG_USEC");
        return info;
    }

    private static async Task<double> TimeToExitAsync(string dll, string[] args, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(Info(dll, args))!;
        await process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return clock.Elapsed.TotalMilliseconds;
    }

    private static async Task<Sample> StartAsync(string dll, string[] args, bool measureRss, CancellationToken cancellationToken)
    {
        var socketDir = Directory.CreateTempSubdirectory("pinhole-bench-notify-").FullName;
        var socketPath = Path.Combine(socketDir, "notify.sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        var info = Info(dll, args);
        info.Environment["NOTIFY_SOCKET"] = socketPath;

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync(cancellationToken);
        _ = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            var ready = await ReceiveUntilAsync(socket, "READY=1", TimeSpan.FromSeconds(30), cancellationToken);
            var readyMs = clock.Elapsed.TotalMilliseconds;
            _ = ready;
            double rss = 0, peak = 0;
            if (measureRss)
            {
                await Task.Delay(Settle, cancellationToken);
                (rss, peak) = ReadRss(process.Id);
            }
            var stop = Stopwatch.StartNew();
            _ = Kill(process.Id, 15);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(15));
            await process.WaitForExitAsync(timeout.Token);
            return new Sample(readyMs, rss, peak, stop.Elapsed.TotalMilliseconds);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            Directory.Delete(socketDir, recursive: true);
        }
    }

    private static async Task<string> ReceiveUntilAsync(Socket socket, string assignment, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var buffer = new byte[4096];
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            var message = Encoding.UTF8.GetString(buffer, 0, n);
            if (message.Split('\n').Contains(assignment)) return message;
        }
    }

    private static (double RssMb, double PeakMb) ReadRss(int pid)
    {
        double rss = 0, peak = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line) / 1024;
            else if (line.StartsWith("VmHWM:", StringComparison.Ordinal)) peak = Kb(line) / 1024;
        }
        return (rss, peak);

        static double Kb(string line) => double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>
    /// The child side: the real pinhole-edge command line and host, with stand-in camera and sensor
    /// pipelines registered through <see cref="IPipelineFactory"/> exactly as the features do.
    /// </summary>
    public static Task<int> RunChildAsync(string[] args) =>
        EdgeHost.Program.RunAsync(args, Console.Out, Console.Error, options =>
        {
            options.IncludeFeatures = false;
            options.ConfigureServices = services => services.AddPipelineFactory((sp, config) => StandIns(config, (Meter)sp.GetService(typeof(Meter))!));
        });

    private static IEnumerable<PipelineSpec> StandIns(EdgeConfig config, Meter meter)
    {
        foreach (var camera in config.Cameras)
        {
            var c = camera;
            yield return PipelineSpec.For($"camera/{c.Name}", c, () => new StandInCamera($"camera/{c.Name}", meter));
        }
        foreach (var sensor in config.Sensors)
        {
            var s = sensor;
            yield return PipelineSpec.For($"sensor/{s.Name}", s, () => new StandInFileSensor(s));
        }
    }

    private sealed class StandInCamera(string name, Meter meter) : IPipeline
    {
        public string Name => name;

        public TimeSpan StallTimeout => TimeSpan.FromSeconds(10);

        public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
        {
            var frames = meter.CreateCounter<long>("pinhole_frames_total", description: "Frames sent.");
            var camera = new KeyValuePair<string, object?>("camera", name);
            var frame = new byte[40_000];
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(40));
            context.SetStatus("playing (stand-in, 25 fps)");
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                Random.Shared.NextBytes(frame.AsSpan(0, 64));
                frames.Add(1, camera);
                context.Heartbeat();
            }
        }
    }

    private sealed class StandInFileSensor(SensorConfig sensor) : IPipeline
    {
        public string Name => $"sensor/{sensor.Name}";

        public TimeSpan StallTimeout => TimeSpan.FromSeconds(30);

        public async Task RunAsync(IPipelineContext context, CancellationToken cancellationToken)
        {
            using var timer = new PeriodicTimer(Duration.ParseOrDefault(sensor.Interval, TimeSpan.FromSeconds(5)));
            do
            {
                var text = await File.ReadAllTextAsync(sensor.Path!, cancellationToken);
                var value = double.Parse(text.Trim(), CultureInfo.InvariantCulture) * sensor.Scale + sensor.Offset;
                context.SetStatus(value.ToString("0.###", CultureInfo.InvariantCulture));
                context.Heartbeat();
            }
            while (await timer.WaitForNextTickAsync(cancellationToken));
        }
    }
}
