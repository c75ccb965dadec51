using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenQA.Selenium;
using Pinhole.Relay;
using Pinhole.Relay.Configuration;
using Pinhole.Streaming;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// WebRTC (WHEP) against MSE in the relay's own player, on loopback: glass-to-glass latency read
/// from a wall-clock barcode burned into every picture by <see cref="StampedCamera"/>, page-open to
/// first-frame time, and the relay's CPU per WebRTC viewer. Two in-process relays get the same
/// camera at once: one with <c>webrtc</c> (its player plays WebRTC), one without (its player plays MSE).
/// </summary>
public sealed class WebRtcBenchmark : IBenchmark
{
    private const string Device = "bench";
    private const string Camera = "cam";
    private const string User = "alice";
    private const string Password = "bench-secret";
    private const int PageLoads = 5;
    private const int CpuViewers = 10;

    /// <inheritdoc />
    public string Name => "webrtc";

    /// <inheritdoc />
    public string Description => "glass-to-glass latency (timestamp burned into the picture, read back in Chromium) and first frame, WebRTC beside MSE; relay CPU per WebRTC viewer";

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        if (Requirements.SkipReason(Needs.Chromium | Needs.Ffmpeg) is { } reason) throw new BenchmarkSkippedException(reason);
        var watch = Stats.Duration("PINHOLE_BENCH_WEBRTC_SECONDS", TimeSpan.FromSeconds(30));
        var loadBefore = LoadAverage();
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-webrtc-");
        try
        {
            var udp = FreePort.GetTcpAndUdp();
            await using var webrtc = await StartRelayAsync(Path.Combine(dir.FullName, "w"), new WebRtcConfig { Udp = $"127.0.0.1:{udp}" });
            await using var mse = await StartRelayAsync(Path.Combine(dir.FullName, "m"), null);
            await using var camera = StampedCamera.Start(Stream(webrtc), Stream(mse));
            using var browser = Chromium.Start();

            var results = new List<Result>();
            foreach (var (relay, expected) in new[] { (mse, "mse"), (webrtc, "webrtc") })
                results.Add(await MeasureAsync(browser, relay, expected, watch, cancellationToken));

            var cpu = await CpuPerViewerAsync(browser, webrtc, cancellationToken);
            return Markdown(results, cpu, watch, camera, $"{loadBefore} before, {LoadAverage()} after");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task<RelayApp> StartRelayAsync(string dataDir, WebRtcConfig? webrtc) =>
        await RelayApp.StartAsync(new RelayConfig
        {
            Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = dataDir, WebRtc = webrtc,
            Viewers = [new ViewerConfig { User = User, Password = Password }],
            Limits = new LimitsConfig { ViewersPerUser = CpuViewers + 4 },
        }, builder => builder.Logging.SetMinimumLevel(Microsoft.Extensions.Logging.LogLevel.Warning));

    private static MediaStream Stream(RelayApp relay) => relay.Services.GetRequiredService<MediaStreamRegistry>().GetOrAdd(Device, Camera);

    private static Uri Player(RelayApp relay) => new(relay.HttpUri, $"/play/{Device}/{Camera}");

    private sealed record Result(string Transport, List<double> FirstFrame, List<double> WebRtcSetup, List<double> GlassToGlass, List<double> Expected, long Unreadable, long Presented, double PlayerEstimateMs);

    private static async Task<Result> MeasureAsync(Chromium browser, RelayApp relay, string expected, TimeSpan watch, CancellationToken ct)
    {
        browser.Navigate(Player(relay));
        browser.Driver.FindElement(By.Name("user")).SendKeys(User);
        browser.Driver.FindElement(By.Name("password")).SendKeys(Password);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync("window.pinhole && window.pinhole.firstFrameAt !== null", TimeSpan.FromSeconds(20), ct);

        // Page loads, each at a random point of the 1 s GOP: navigation start to the first presented frame.
        var firstFrame = new List<double>();
        var setup = new List<double>();
        var random = new Random(1);
        for (var i = 0; i < PageLoads; i++)
        {
            await Task.Delay(700 + random.Next(1000), ct);
            browser.Navigate(Player(relay));
            await browser.WaitForAsync("window.pinhole && window.pinhole.firstFrameAt !== null", TimeSpan.FromSeconds(20), ct);
            var transport = browser.Execute<string>("return window.pinhole.transport;");
            if (transport != expected) throw new InvalidOperationException($"the player plays {transport}, expected {expected} ({browser.Execute<string>("return String(window.pinhole.fallbackReason);")})");
            firstFrame.Add(browser.Execute<double>("return window.pinhole.firstFrameAt - performance.getEntriesByType('navigation')[0].startTime;"));
            if (expected == "webrtc") setup.Add(browser.Execute<double>("return window.pinhole.webrtcFirstFrameMs;"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {expected} page load {i + 1}: first frame after {firstFrame[^1]:0} ms"));
        }

        await browser.WaitForAsync("window.pinhole.state === 'live'", TimeSpan.FromSeconds(10), ct);
        await Task.Delay(3000, ct); // the MSE player settles its buffer; WebRTC's jitter buffer adapts
        browser.Execute(StampedCamera.ReaderScript);
        var estimates = new List<double>();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < watch)
        {
            await Task.Delay(1000, ct);
            var e = browser.Execute<object?>("const l = window.pinhole.latency(); return l === null || l === undefined ? null : l * 1000;");
            if (e is not null) estimates.Add(Convert.ToDouble(e, CultureInfo.InvariantCulture));
        }
        browser.Execute("window.g2gStop = true;");
        var g2g = browser.Execute<IReadOnlyCollection<object>>("return window.g2g;").Select(v => Convert.ToDouble(v, CultureInfo.InvariantCulture)).ToList();
        var expectedDisplay = browser.Execute<IReadOnlyCollection<object>>("return window.g2gExpected;").Select(v => Convert.ToDouble(v, CultureInfo.InvariantCulture)).ToList();
        var unreadable = browser.Execute<long>("return window.g2gUnreadable;");
        if (g2g.Count == 0) throw new InvalidOperationException($"{expected}: no stamp read back from the picture ({unreadable} frames unreadable)");
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"  {expected}: glass-to-glass median {Stats.Percentile(g2g, 0.5):0} ms, p95 {Stats.Percentile(g2g, 0.95):0} ms, min {g2g.Min():0}, max {g2g.Max():0} ({g2g.Count} frames read, {unreadable} unreadable); by expectedDisplayTime median {Stats.Percentile(expectedDisplay, 0.5):0} ms; player's own estimate median {Stats.Percentile(estimates, 0.5):0} ms"));
        return new Result(expected, firstFrame, setup, g2g, expectedDisplay, unreadable, g2g.Count + unreadable, Stats.Percentile(estimates, 0.5));
    }

    private static async Task<(double Idle, double Busy, long[] Decoded)> CpuPerViewerAsync(Chromium browser, RelayApp relay, CancellationToken ct)
    {
        // A page of the relay's without a player: only the viewers opened below watch.
        browser.Navigate(new Uri(relay.HttpUri, "/login"));
        await Task.Delay(3000, ct);
        var pid = Environment.ProcessId;
        var window = TimeSpan.FromSeconds(10);
        var clock = Stopwatch.StartNew();
        var start = ProcessStats.CpuSeconds(pid);
        await Task.Delay(window, ct);
        var idle = (ProcessStats.CpuSeconds(pid) - start) / clock.Elapsed.TotalSeconds;

        var opened = browser.Driver.ExecuteAsyncScript($$"""
            const done = arguments[arguments.length - 1];
            (async () => {
              window.viewers = [];
              for (let i = 0; i < {{CpuViewers}}; i++) {
                const pc = new RTCPeerConnection();
                pc.addTransceiver('video', { direction: 'recvonly' });
                const v = document.createElement('video');
                v.muted = true; v.autoplay = true; v.width = 80; v.height = 45;
                document.body.appendChild(v);
                pc.ontrack = (e) => { v.srcObject = new MediaStream([e.track]); v.play().catch(() => {}); };
                await pc.setLocalDescription(await pc.createOffer());
                const r = await fetch('/whep/{{Device}}/{{Camera}}', { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
                if (r.status !== 201) { done('viewer ' + i + ': ' + r.status + ' ' + await r.text()); return; }
                await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
                window.viewers.push(pc);
              }
              done('ok');
            })().catch((e) => done('error ' + e));
            """) as string;
        if (opened != "ok") throw new InvalidOperationException("opening WebRTC viewers: " + opened);
        await browser.WaitForAsync($"window.viewers.filter((pc) => pc.connectionState === 'connected').length === {CpuViewers}", TimeSpan.FromSeconds(30), ct);
        await Task.Delay(2000, ct);
        const string Frames = """
            const done = arguments[arguments.length - 1];
            Promise.all(window.viewers.map((pc) => pc.getStats().then((report) => {
              let n = 0; report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n = s.framesDecoded || 0; }); return n;
            }))).then(done, () => done([]));
            """;
        long[] ViewerFrames() => browser.Driver.ExecuteAsyncScript(Frames) is IReadOnlyCollection<object> values
            ? values.Select(v => Convert.ToInt64(v, CultureInfo.InvariantCulture)).ToArray()
            : throw new InvalidOperationException("the page has no viewer stats");
        var before = ViewerFrames();
        clock.Restart();
        start = ProcessStats.CpuSeconds(pid);
        await Task.Delay(window, ct);
        var busy = (ProcessStats.CpuSeconds(pid) - start) / clock.Elapsed.TotalSeconds;
        var after = ViewerFrames();
        browser.Execute("window.viewers.forEach((pc) => pc.close());");
        var decoded = after.Zip(before, (a, b) => a - b).ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  relay process CPU: {idle * 100:0.0}% of a core with the camera in and no viewers, {busy * 100:0.0}% with {CpuViewers} WebRTC viewers; frames decoded per viewer in 10 s: {string.Join(",", decoded)}"));
        return (idle, busy, decoded);
    }

    /// <summary>The 1-minute load average (/proc/loadavg): how busy the shared machine was.</summary>
    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static string Markdown(List<Result> results, (double Idle, double Busy, long[] Decoded) cpu, TimeSpan watch, StampedCamera camera, string load)
    {
        var inv = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append("## webrtc — glass-to-glass latency and first frame, WebRTC beside MSE\n\n");
        md.Append(inv, $"`dotnet run --project bench/Pinhole.Benchmarks -c Release -- --out docs/benchmarks.md webrtc` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC. ")
          .Append(inv, $"A test camera made in the benchmark burns the wall-clock time (Unix ms, 48 bits as black/white blocks plus an inverted copy as a check) into each raw {StampedCamera.Width}x{StampedCamera.Height} picture at {StampedCamera.Fps} fps ")
          .Append("just before handing it to ffmpeg (libx264 ultrafast, zerolatency, one thread, no B-frames, GOP 1 s, 1.5 Mbit/s); ffmpeg's RTP over loopback UDP is depacketized by Pinhole's `H264Depacketizer` ")
          .Append("and fed to two in-process relays at once, one with `webrtc` (its player plays WHEP) and one without (its player plays MSE over WebSocket). ")
          .Append("Headless Chromium (Debian) opens `/play/DEVICE/CAMERA` of each in turn; a script draws every frame the video element presents ")
          .Append("(`requestVideoFrameCallback`) to a canvas, reads the blocks back and records `Date.now()` in that callback minus the stamp, on the same system clock. ")
          .Append("So the figure covers encode, RTP in, the relay, WebRTC or MSE transport, the browser's jitter buffer or media buffer, decode and compositing.\n\n")
          .Append("Error of the method: the stamp is taken when the raw picture is complete (a real camera adds its exposure and readout, ~1 frame, not counted here); ")
          .Append("the callback runs at the next 60 Hz begin-frame of headless Chromium after the frame is ready, so a sample can be up to ~17 ms late (never early); ")
          .Append("the compositor's own `expectedDisplayTime` is given beside it, but it can lie before the stamp (it is the planned time of the current frame interval), so it is not the headline; ")
          .Append("both clocks are the machine's wall clock (no cross-host skew). The encoder runs on the same 2 shared cores as the browser, which adds load-dependent noise to both rows alike; ")
          .Append(inv, $"the 1-minute load average was {load}. Chromium's WebRTC jitter buffer grows with arrival jitter, so on a busy machine WebRTC's figure moves much more from run to run than MSE's.\n\n");
        md.Append(inv, $"| transport | glass-to-glass median | p95 | min | max | by `expectedDisplayTime`, median | frames read ({watch.TotalSeconds:0} s) | player's own latency estimate | page open → first frame ({PageLoads} loads) |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in results)
        {
            var g = r.GlassToGlass;
            var label = r.Transport == "webrtc" ? "WebRTC (WHEP, UDP host candidate)" : "MSE (fMP4 over WebSocket)";
            var estimate = double.IsNaN(r.PlayerEstimateMs) ? "—" : string.Create(inv, $"{r.PlayerEstimateMs:0} ms");
            md.Append(inv, $"| {label} | **{Stats.Percentile(g, 0.5):0} ms** | {Stats.Percentile(g, 0.95):0} ms | {g.Min():0} ms | {g.Max():0} ms | {Stats.Percentile(r.Expected, 0.5):0} ms | {g.Count} of {r.Presented} | {estimate} | median {Stats.Percentile(r.FirstFrame, 0.5):0} ms (min {r.FirstFrame.Min():0}, max {r.FirstFrame.Max():0}) |\n");
        }
        if (results.FirstOrDefault(r => r.Transport == "webrtc") is { WebRtcSetup.Count: > 0 } w)
            md.Append(inv, $"\nWebRTC's part of the first frame (offer created → first frame: WHEP POST, ICE check, DTLS handshake, the cached keyframe): median {Stats.Percentile(w.WebRtcSetup, 0.5):0} ms, min {w.WebRtcSetup.Min():0}, max {w.WebRtcSetup.Max():0}.\n");
        md.Append("The player's own estimate is what it shows beside the picture: for MSE the buffered end minus `currentTime`, for WebRTC the jitter buffer delay plus half the round trip (it does not see encode or the camera).\n\n");
        md.Append(inv, $"Relay CPU per WebRTC viewer: the benchmark process (both relays and the camera's RTP reader; ffmpeg is a separate process) used {cpu.Idle * 100:0.0}% of a core over 10 s with the camera flowing and nobody watching, ")
          .Append(inv, $"and {cpu.Busy * 100:0.0}% with {CpuViewers} WebRTC viewers (WHEP from one Chromium page; frames decoded per viewer in those 10 s: {string.Join(", ", cpu.Decoded)}): ")
          .Append(inv, $"**{(cpu.Busy - cpu.Idle) / CpuViewers * 100:0.00}% of a core per viewer** (SRTP, packetization, NACK buffer, RTCP). ")
          .Append(inv, $"The camera wrote {Interlocked.Read(ref camera.FramesWritten)} frames and {Interlocked.Read(ref camera.UnitsDelivered)} reached the relays. ")
          .Append("No peer WebRTC server (go2rtc, MediaMTX) is installed here to compare with; MSE is the comparison. ").Append(Stats.Noise).Append('\n');
        return md.ToString();
    }
}
