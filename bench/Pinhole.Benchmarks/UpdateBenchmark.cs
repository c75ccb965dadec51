using System.Diagnostics;
using System.Globalization;
using System.Text;
using Pinhole.Relay.Updates;
using Pinhole.Testing;
using Pinhole.Transport.Updates;

namespace Pinhole.Benchmarks;

/// <summary>
/// Remote updates (issue 12) on loopback with the real programs: a relay, and a device run as in the
/// field (a shell loop standing in for systemd around <c>image/pinhole-launch</c>, the edge in
/// <c>ROOT/releases/1.0.0</c>) pulling a 4 Mbit/s GStreamer camera. A 32 MiB bundle is rolled out while
/// the camera streams, and two viewers (one through the relay, one on the camera) record every frame:
/// we report the download throughput over the uplink, the time from rollout start to committed, and
/// the video's added delay through the relay before and during the download (frames matched by content).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class UpdateBenchmark : IBenchmark
{
    /// <summary>The figures this section replaced and why they moved (kept in the section when it is re-run).</summary>
    private const string PreviousRecord =
        "**Against the previous record** (2026-12-02 19:43 UTC, commit 643cddd, load not recorded): a 33.0 MiB bundle, committed after 13.5 s, downloaded at 11.5 MB/s, video during the download median 15.1 ms, p99 291.7 ms. Three runs on 2026-12-03 (load 15–17, 24–21 and 16–14) were all faster: committed after 7.0, 8.5 and 3.8 s, downloads at 26.2, 25.1 and 55.9 MB/s, p99 31.6, 34.9 and 46.7 ms during the download. The old record's load is not known, and other sections show how far the load moves such figures (telemetry 2.5 to 9.5 times on unchanged code), so this may be the machine as much as the code. The bundle grew by 6.6 MiB: the edge now ships MQTTnet, Microsoft.Extensions.Hosting.Systemd, OpenTelemetry, System.Device.Gpio, Iot.Device.Bindings with UnitsNet and Pinhole.Streaming, none of which that commit's edge had. The update code itself changed little since (per-architecture bundles, rollouts in PostgreSQL, metrics on OpenTelemetry), while the uplink's send path changed a lot (per-GOP sending, tunnel data yielding to video, the relay's device streams copied by Stream.CopyToAsync instead of a loop that flushed after every write); whether any of those made the download faster beside video was not isolated.";

    private const string Device = "bench";
    private const string Token = "bench-device-token-0123456789";
    private const int FillerBytes = 32 << 20;

    /// <inheritdoc />
    public string Name => "updates";

    /// <inheritdoc />
    public string Description => "rollout start to committed for one device, and download throughput over the uplink while a 4 Mbit/s camera streams (video delay before/during)";

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var run = RunRecord.Start(Name);
        if (Requirements.SkipReason(Needs.RtspCamera) is { } reason) throw new BenchmarkSkippedException(reason);
        var options = new RtspCameraOptions { Width = 1280, Height = 720, Fps = 30, BitrateKbps = 4000, Gop = 30 };
        await using var camera = await RtspCamera.StartAsync(options, cancellationToken);
        var dir = Directory.CreateTempSubdirectory("pinhole-bench-update-").FullName;
        var inv = CultureInfo.InvariantCulture;
        PeerProcess? relay = null, device = null;
        try
        {
            var (http, rtsp, web) = (FreePort.Get(), FreePort.Get(), FreePort.Get());
            var root = Path.Combine(dir, "opt");
            var (priv, pub) = ReleasePacker.CreateKeyPair();
            await File.WriteAllTextAsync(Path.Combine(dir, "release.pub"), pub, cancellationToken);
            var build = Path.Combine(dir, "build");
            MakeBuild(build);
            var installed = Path.Combine(root, "releases", "1.0.0");
            Directory.CreateDirectory(installed);
            foreach (var f in Directory.EnumerateFiles(build, "*", SearchOption.AllDirectories))
            {
                var to = Path.Combine(installed, Path.GetRelativePath(build, f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to);
                File.SetUnixFileMode(to, File.GetUnixFileMode(f));
            }
            await File.WriteAllTextAsync(Path.Combine(installed, "release.json"), """{"version":"1.0.0","architecture":"any"}""", cancellationToken);
            File.CreateSymbolicLink(Path.Combine(root, "current"), "releases/1.0.0");
            var filler = new byte[FillerBytes];
            new Random(1).NextBytes(filler);
            await File.WriteAllBytesAsync(Path.Combine(build, "filler.bin"), filler, cancellationToken);
            var bundle = Path.Combine(dir, "2.0.0.bundle");
            ReleasePacker.Pack(build, "2.0.0", priv, bundle, "any");
            var size = new FileInfo(bundle).Length;

            await File.WriteAllTextAsync(Path.Combine(dir, "relay.json"), $$"""
                { "http": "http://127.0.0.1:{{http}}", "rtsp": "127.0.0.1:{{rtsp}}", "dataDir": "{{dir}}/relay-data",
                  "devices": [ { "id": "{{Device}}", "token": "{{Token}}" } ], "viewers": [ { "user": "v", "password": "bench-pass" } ] }
                """, cancellationToken);
            await File.WriteAllTextAsync(Path.Combine(dir, "edge.json"), $$"""
                { "deviceId": "{{Device}}", "token": "{{Token}}", "relays": [ "ws://127.0.0.1:{{http}}/uplink" ],
                  "cameras": [ { "name": "cam", "source": "{{camera.Url}}" } ],
                  "web": { "listen": "http://127.0.0.1:{{web}}", "password": "bench" }, "dataDir": "{{dir}}/edge-data",
                  "update": { "publicKey": "{{dir}}/release.pub", "root": "{{root}}", "trialTimeout": "60s" } }
                """, cancellationToken);
            relay = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", Path.Combine(AppContext.BaseDirectory, "pinhole-relay.dll"), "--config", Path.Combine(dir, "relay.json"))
            { Name = "relay", WorkingDirectory = dir, ReadyTcpPort = http }, cancellationToken);
            var launcher = Path.Combine(RepoPaths.Root, "image", "pinhole-launch");
            device = await PeerProcess.StartAsync(new PeerStartInfo("sh", "-c", $"while true; do sh '{launcher}' '{root}' --config '{dir}/edge.json'; sleep 0.5; done")
            {
                Name = "device", WorkingDirectory = dir, OutputLines = 2000,
                ReadyCheck = async ct => await VideoPath.ReadMetricAsync(new Uri($"http://127.0.0.1:{web}/metrics"), "pinhole_uplink_frames_sent_total", ct) > 0,
            }, cancellationToken);
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);

            var relayUrl = new Uri($"rtsp://v:bench-pass@127.0.0.1:{rtsp}/{Device}/cam");
            var direct = new ArrivalRecorder();
            var relayed = new ArrivalRecorder();
            using var viewing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var viewers = new[] { ArrivalRecorder.RunAsync(relayUrl, relayed, viewing.Token), ArrivalRecorder.RunAsync(camera.Url, direct, viewing.Token) };
            await Task.Delay(TimeSpan.FromSeconds(8), cancellationToken); // connect, then a baseline
            var baselineFrom = Stopwatch.GetTimestamp() - 5 * Stopwatch.Frequency;

            new ReleaseStore(Path.Combine(dir, "relay-data")).Add(bundle);
            using var store = new UpdateStore(Path.Combine(dir, "relay-data"));
            var clock = Stopwatch.StartNew();
            var rolloutAt = Stopwatch.GetTimestamp();
            store.Start("2.0.0", [Device], 100, 100, force: false, "bench", DateTimeOffset.UtcNow);
            TimeSpan? firstBytes = null, downloaded = null, committed = null;
            long downloadEnd = 0;
            while (clock.Elapsed < TimeSpan.FromMinutes(3) && committed is null)
            {
                var d = store.Get(Device);
                if (d?.Version == "2.0.0")
                {
                    if (firstBytes is null && d.State is "downloading" or "installing" or "trial" or "committed") firstBytes = clock.Elapsed;
                    if (downloaded is null && d.State is "installing" or "trial" or "committed")
                    {
                        downloaded = clock.Elapsed;
                        downloadEnd = Stopwatch.GetTimestamp();
                    }
                    if (d.State == "committed") committed = clock.Elapsed;
                    if (d.State is "rolled-back" or "refused") throw new InvalidOperationException($"update {d.State}: {d.Detail}\n{device.Output}");
                }
                await Task.Delay(20, cancellationToken);
            }
            if (committed is null || downloaded is null) throw new InvalidOperationException($"not committed within 3 min\n{device.Output}\n{relay.Output}");
            await viewing.CancelAsync();
            await Task.WhenAll(viewers);

            var reference = direct.Snapshot();
            var all = relayed.Snapshot();
            var baseline = ArrivalRecorder.Delays(reference.Where(a => a.Timestamp < rolloutAt).ToList(), all, baselineFrom);
            var during = ArrivalRecorder.Delays(reference.Where(a => a.Timestamp >= rolloutAt && a.Timestamp <= downloadEnd).ToList(), all, rolloutAt);
            var throughput = size / (downloaded.Value - (firstBytes ?? TimeSpan.Zero)).TotalSeconds;
            Console.WriteLine(string.Create(inv, $"  {size} bytes: offer->downloaded {downloaded.Value.TotalSeconds:0.00} s ({throughput / 1e6:0.0} MB/s), rollout->committed {committed.Value.TotalSeconds:0.0} s"));
            Console.WriteLine(string.Create(inv, $"  video via relay minus direct: before median {Stats.Percentile(baseline, 0.5):0.0} ms p99 {Stats.Percentile(baseline, 0.99):0.0}; during download median {Stats.Percentile(during, 0.5):0.0} ms p99 {Stats.Percentile(during, 0.99):0.0} max {(during.Count > 0 ? during.Max() : 0):0.0} ({during.Count} frames)"));

            var md = new StringBuilder();
            md.Append("## updates — rollout to committed, and a download beside live video\n\n");
            md.Append(run.Line(RunRecord.Tool("GStreamer", "gst-launch-1.0", "--version")));
            md.Append(inv, $"Loopback, real processes: `pinhole-relay`, and the device as in the field — a shell loop standing in for systemd's `Restart=always` around `image/pinhole-launch`, the edge in `ROOT/releases/1.0.0` — pulling a GStreamer camera at {options.Width}x{options.Height} {options.Fps} fps {options.BitrateKbps} kbit/s. ")
              .Append(inv, $"A {size / 1048576.0:0.0} MiB bundle (the edge plus {FillerBytes >> 20} MiB of random data) is rolled out while the camera streams and two RTSP viewers (one through the relay, one on the camera) record every frame, matched by content as in the latency benchmark. ")
              .Append("The peer is the same path before the rollout (no download).\n\n");
            md.Append("| measurement | value |\n|---|---|\n");
            md.Append(inv, $"| rollout start → committed (download, verify, unpack, switch, restart, trial passed) | {committed.Value.TotalSeconds:0.0} s |\n");
            md.Append(inv, $"| download over the uplink (first chunk → downloaded) | {throughput / 1e6:0.0} MB/s ({(downloaded.Value - (firstBytes ?? TimeSpan.Zero)).TotalSeconds:0.00} s) |\n\n");
            md.Append("| video through the relay, minus direct | frames | median | p99 | max |\n|---|---|---|---|---|\n");
            md.Append(inv, $"| during the download | {during.Count} | {Stats.Percentile(during, 0.5):0.0} ms | {Stats.Percentile(during, 0.99):0.0} ms | {(during.Count > 0 ? during.Max() : 0):0.0} ms |\n");
            md.Append(inv, $"| peer: the same path before the rollout | {baseline.Count} | {Stats.Percentile(baseline, 0.5):0.0} ms | {Stats.Percentile(baseline, 0.99):0.0} ms | {(baseline.Count > 0 ? baseline.Max() : 0):0.0} ms |\n");
            md.Append(inv, $"\nThe download asks for 64 KiB at a time, four outstanding, and only while no frame waits in the uplink's send queue. {Stats.Noise}\n");
            md.Append('\n').Append(PreviousRecord).Append('\n');
            return md.ToString();
        }
        finally
        {
            if (device is not null) await device.DisposeAsync();
            if (relay is not null) await relay.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static void MakeBuild(string dir) => EdgeReleaseFolder.Make(dir);
}
